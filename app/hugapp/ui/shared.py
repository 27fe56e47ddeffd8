"""What every screen's actions share: the running companion (a ``CompanionApi``), the background
tasks, the error and notice shown on top, and the reads one snapshot makes once for all screens."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from hugapp.core import relaystore as rs
from hugapp.core.api import CompanionApi
from hugapp.core.hugstore import HistoryEntry
from hugapp.ui.words import describe_error

log = logging.getLogger("hugapp.ui")

HISTORY_ROWS = 200


class Shared:
    """Actions start background tasks on the running loop and return at once, so a tap never blocks
    it; whenever anything may have changed, ``on_update`` is called (the app batches those)."""

    def __init__(
        self,
        api: CompanionApi,
        on_update: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.on_update = on_update
        self.clock = clock
        self.tasks: set[asyncio.Task[Any]] = set()
        self.error = ""
        self.notice = ""

    def changed(self) -> None:
        self.on_update()

    def fail(self, sentence: str) -> None:
        """Refuse an action in words, before it starts."""
        self.error = sentence
        self.changed()

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run an action in the background; its error is shown in words, never raised into Kivy."""

        async def guarded() -> Any:
            try:
                return await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure of an action is shown to the person
                log.info("%s failed: %r", what, exc)
                self.error = describe_error(exc)
                return None
            finally:
                self.changed()

        task = asyncio.ensure_future(guarded())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


@dataclass(frozen=True)
class Reads:
    """What a snapshot reads once and every screen's view uses."""

    now: float
    me: rs.Identity
    members: list[rs.Member]
    history: list[HistoryEntry]  # newest first
    wearers: list[rs.Wearer]  # people without a phone whose bands are owned here

    @classmethod
    def of(cls, api: CompanionApi, now: float) -> Reads:
        return cls(now, api.identity(), api.members(), api.history(HISTORY_ROWS), rs.wearers(api.store))

    def name_of(self, member_id: str) -> str:
        for m in self.members:
            if m.member_id == member_id:
                return m.name
        for w in self.wearers:
            if w.member_id == member_id:
                return w.name
        return "you" if member_id == self.me.member_id else "someone"
