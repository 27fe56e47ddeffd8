"""Actions a screen starts in the background: they return at once, so a tap never blocks Kivy's loop;
a failure is shown in words on top (``error``), never raised into Kivy; ``on_update`` is called
whenever anything may have changed (the app batches those). The family app's ``Shared`` and the
hub's ``HubControl`` are both made of it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("hugapp.ui")


class Actions:
    def __init__(self, on_update: Callable[[], None], words: Callable[[BaseException], str]) -> None:
        self.on_update = on_update
        self.words = words  # a failure in words the person can act on
        self.tasks: set[asyncio.Task[Any]] = set()
        self.error = ""
        self.notice = ""

    def changed(self) -> None:
        self.on_update()

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run an action in the background; its error is shown in words, never raised into Kivy."""

        async def guarded() -> Any:
            try:
                return await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure of an action is shown to the person
                log.info("%s failed: %r", what, exc)
                self.error = self.words(exc)
                return None
            finally:
                self.changed()

        task = asyncio.ensure_future(guarded())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
