"""What the screens show and do, without Kivy: one :class:`Controller` per companion's screens.

The Kivy app (``hugapp.ui.app``) owns one Controller over a ``hugapp.core.api.CompanionApi``: a
Companion in this process (desktop) or the hug service's (``hugapp.window_link.remote``). Each
screen's actions and view builder live in its own module (``home``, ``bands``, ``link``, ``history``,
``settings``, ``child``); the kv files call them as ``controller.bands.scan()`` and so on. Actions
start background tasks and return at once; whenever anything may have changed the controller calls
``on_update``, the app batches those calls with a Kivy trigger and reads :meth:`Controller.snapshot`,
plain data the screens copy into their Kivy properties. A snapshot only reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from hugapp.core import uisettings
from hugapp.core.api import CompanionApi
from hugapp.ui.bands import BandsActions, BandsView
from hugapp.ui.child import ChildActions
from hugapp.ui.history import HistoryView, history_view
from hugapp.ui.home import HomeActions, HomeView
from hugapp.ui.link import LinkActions, LinkView
from hugapp.ui.settings import SettingsActions, SettingsView
from hugapp.ui.shared import Reads, Shared


@dataclass(frozen=True)
class Snapshot:
    me: str
    error: str
    notice: str
    child_mode: bool
    has_pin: bool
    home: HomeView
    bands: BandsView
    link: LinkView
    history: HistoryView
    settings: SettingsView


class Controller(Shared):
    """Actions and state of the app over one running companion (see the module docstring)."""

    def __init__(
        self,
        api: CompanionApi,
        on_update: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(api, on_update, clock)
        self.home = HomeActions(self)
        self.bands = BandsActions(self)
        self.link = LinkActions(self)
        self.settings = SettingsActions(self)
        self.child = ChildActions(self)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.link.close()

    def dismiss_error(self) -> None:
        self.error = ""
        self.notice = ""
        self.changed()

    def snapshot(self) -> Snapshot:
        """Everything the screens show, read now (no side effects)."""
        reads = Reads.of(self.api, self.clock())
        ui = uisettings.load(self.api.store)
        low = uisettings.low_battery_percent(ui)
        return Snapshot(
            me=reads.me.name,
            error=self.error,
            notice=self.notice,
            child_mode=bool(ui.get("child_mode", False)),
            has_pin="pin_hash" in ui,
            home=self.home.view(reads),
            bands=self.bands.view(reads, low),
            link=self.link.view(reads.now),
            history=history_view(self.api, reads),
            settings=self.settings.view(low),
        )
