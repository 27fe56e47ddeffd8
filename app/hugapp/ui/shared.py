"""What every screen's actions share: the running companion (a ``CompanionApi``), the background
tasks, the error and notice shown on top, and the reads one snapshot makes once for all screens."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from hugapp.core import relaystore as rs
from hugapp.core.api import CompanionApi
from hugapp.core.hugstore import HistoryEntry
from hugapp.ui.actions import Actions
from hugapp.ui.words import describe_error

log = logging.getLogger("hugapp.ui")

HISTORY_ROWS = 200


class Shared(Actions):
    """The running companion and the screens' background actions (``Actions``), with errors in the
    family app's words."""

    def __init__(
        self,
        api: CompanionApi,
        on_update: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(on_update, describe_error)
        self.api = api
        self.clock = clock

    def fail(self, sentence: str) -> None:
        """Refuse an action in words, before it starts."""
        self.error = sentence
        self.changed()


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
