"""Quiet hours per wearer through the window's API (``CompanionApi``), in this process (Companion) and
over the window link (RemoteCompanion, as the hug service's window), and the Settings screen's
controller: Mum's phone owns her band and that of Mia, who has no phone; Dad has a phone of his own.
No radio: the bands are records in a real store; what is held is read from the plays stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_router import TZ, Clock, at

from hugapp.core import relaystore as rs
from hugapp.core.api import CompanionApi
from hugapp.core.bandlink import BleConfig
from hugapp.core.companion import Companion
from hugapp.core.hugs import Hug
from hugapp.core.notify import DesktopNotifier
from hugapp.core.relay import Incoming
from hugapp.core.router import HUG_TYPE
from hugapp.core.schedule import DayType, Schedule
from hugapp.core.store import Store, StoreError
from hugapp.dev.world import NO_QUIET_HOURS
from hugapp.ui.controller import Controller
from hugapp.ui.settings import YOU
from hugapp.ui.words import parse_windows
from hugapp.window_link.api_wire import CompanionHandler
from hugapp.window_link.remote import RemoteCompanion
from hugapp.window_link.server import LinkServer
from hugproto import frames

LINK = "l" * 32
DAD = "d" * 32
MUM_BAND = "b2b2b2b2b2b2"
MIA_BAND = "a1a1a1a1a1a1"
SATURDAY_NIGHT = at("2026-11-21T23:00")  # a Home day


@dataclass
class Family:
    phone: Companion  # Mum's phone
    api: CompanionApi  # the phone itself, or its window over the window link
    mia: str
    clock: Clock

    def settings_rows(self) -> list[tuple[str, str]]:
        return self.phone.store.db.execute(
            "SELECT key, value FROM settings WHERE key LIKE 'schedule%' ORDER BY key"
        ).fetchall()

    async def hug_from_dad(self, n: int) -> str:
        hug = Hug(f"h{n}", DAD, frames.GESTURE_TAP, 1, 0, self.clock.t)
        msg = Incoming(LINK, DAD, f"{n:032x}", HUG_TYPE, hug.to_payload(), self.clock.t)
        await self.phone.router.on_relay_message(msg)
        await self.phone.router.deliver()
        return hug.hug_id

    def due(self, hug_id: str) -> dict[str, bool]:
        """Each band's play of the hug: due now (True) or held for later (False)."""
        rows = self.phone.store.db.execute(
            "SELECT band, not_before FROM plays WHERE hug_id = ?", (hug_id,)
        ).fetchall()
        return {band: not_before <= self.clock.t for band, not_before in rows}


@asynccontextmanager
async def family(tmp: Path, through: str) -> AsyncIterator[Family]:
    clock = Clock(SATURDAY_NIGHT)
    store = Store(tmp / "companion.sqlite3", clock=clock)
    phone = Companion(store, BleConfig(), None, name="Mum", notifier=DesktopNotifier(), clock=clock, tz=TZ)
    with store.transaction() as db:
        rs.save_link(db, LINK, bytes(32), "family", clock.t)
        rs.save_member(db, rs.Member(LINK, DAD, "Dad", "e" * 32, bytes(32), 2), clock.t)
    store.save_band(MUM_BAND, "Mum's band", bytes(16))
    store.save_band(MIA_BAND, "Mia's band", bytes(16))
    mia = phone.coowners.add_wearer("Mia")
    store.set_wearer(MIA_BAND, mia)
    phone.coowners.sync_wearers()
    phone.router.set_schedule(NO_QUIET_HOURS)  # Mum's: no quiet hours; Mia's follow them until set
    async with AsyncExitStack() as stack:  # the phone is not started: no radio, no band links
        api: CompanionApi = phone
        if through == "window link":
            await stack.enter_async_context(LinkServer(CompanionHandler(phone), tmp))
            api = await stack.enter_async_context(await RemoteCompanion.connect(tmp, timeout=5))
        yield Family(phone, api, mia, clock)
    store.close()


THROUGH = ["in process", "window link"]


def run(tmp: Path, through: str, test: Callable[[Family], Awaitable[None]]) -> None:
    async def main() -> None:
        async with family(tmp, through) as f:
            await test(f)

    asyncio.run(main())


NIGHT = "21:00-07:00 hold"


@pytest.mark.parametrize("through", THROUGH)
def test_mias_quiet_hours_hold_hugs_on_her_band_only(tmp_path: Path, through: str) -> None:
    async def test(f: Family) -> None:
        mums = f.api.schedule().to_settings()
        night = Schedule(windows={DayType.SCHOOL: (), DayType.HOME: tuple(parse_windows(NIGHT))})
        await f.api.set_schedule(night, f.mia)
        assert f.api.schedule(f.mia).to_settings() == night.to_settings()
        assert f.phone.router.schedule(f.mia).to_settings() == night.to_settings()  # the service's
        assert f.api.schedule().to_settings() == mums, "Mum's quiet hours unchanged"
        assert f.api.schedule(f.phone.me.member_id).to_settings() == mums
        hug_id = await f.hug_from_dad(1)
        assert f.due(hug_id) == {MUM_BAND: True, MIA_BAND: False}, "held for Mia, not for Mum"

    run(tmp_path, through, test)


@pytest.mark.parametrize("through", THROUGH)
@pytest.mark.parametrize("who", ["dad", "stranger", "mia's band forgotten"])
def test_quiet_hours_for_someone_not_served_here_are_refused_and_change_nothing(
    tmp_path: Path, through: str, who: str
) -> None:
    async def test(f: Family) -> None:
        wearer = {"dad": DAD, "stranger": "f" * 32, "mia's band forgotten": f.mia}[who]
        if who == "mia's band forgotten":
            f.phone.store.forget_band(MIA_BAND)
        before = f.settings_rows()
        outbox = rs.outbox_items(f.phone.store)
        with pytest.raises(StoreError, match="people without a phone whose bands this companion owns"):
            await f.api.set_schedule(Schedule(), wearer)
        with pytest.raises(StoreError, match="without a phone"):
            f.api.schedule(wearer)
        assert f.settings_rows() == before
        assert rs.outbox_items(f.phone.store) == outbox

    run(tmp_path, through, test)


@pytest.mark.parametrize("through", THROUGH)
def test_settings_screen_saves_quiet_hours_for_the_wearer_chosen(tmp_path: Path, through: str) -> None:
    async def test(f: Family) -> None:
        ui = Controller(f.api)

        async def settled() -> None:
            await asyncio.gather(*ui.tasks)

        view = ui.snapshot().settings
        assert (view.quiet_for, view.quiet_choices) == (YOU, (YOU, "Mia"))
        mums = f.api.schedule().to_settings()
        ui.settings.choose_quiet_for("Mia")
        assert ui.snapshot().settings.quiet_for == "Mia"
        # a wrong window is refused in words and saves nothing
        before = f.settings_rows()
        assert not ui.settings.save_schedule("Mon Tue Wed Thu Fri", "", "soon", "")
        assert "isn't a quiet window" in ui.snapshot().error
        assert f.settings_rows() == before
        assert ui.settings.save_schedule("Mon Tue Wed Thu Fri", "", NIGHT, "")
        await settled()
        snap = ui.snapshot()
        assert (snap.error, snap.notice) == ("", "Quiet hours saved for Mia")
        assert (snap.settings.quiet_for, snap.settings.home) == ("Mia", NIGHT)
        assert [f"{w.start:%H:%M}" for w in f.phone.router.schedule(f.mia).windows[DayType.HOME]] == ["21:00"]
        assert f.api.schedule().to_settings() == mums
        hug_id = await f.hug_from_dad(2)
        assert f.due(hug_id) == {MUM_BAND: True, MIA_BAND: False}
        # back to your own: the fields show yours, Save saves yours
        ui.settings.choose_quiet_for(YOU)
        assert (ui.snapshot().settings.quiet_for, ui.snapshot().settings.home) == (YOU, "")
        assert ui.settings.save_schedule("Mon Tue Wed Thu Fri", "", "22:00-06:00 gentle", "")
        await settled()
        assert ui.snapshot().notice == "Quiet hours saved"
        assert [f"{w.start:%H:%M}" for w in f.api.schedule().windows[DayType.HOME]] == ["22:00"]
        assert [f"{w.start:%H:%M}" for w in f.api.schedule(f.mia).windows[DayType.HOME]] == ["21:00"]
        # someone not in the chooser is refused in words; the choice stays
        ui.settings.choose_quiet_for("Dad")
        assert ui.snapshot().error == "Dad has no band on this phone"
        assert ui.snapshot().settings.quiet_for == YOU
        # Mia's band forgotten while she is chosen: the screen shows (and saves) yours again
        ui.settings.choose_quiet_for("Mia")
        f.phone.store.forget_band(MIA_BAND)
        view = ui.snapshot().settings
        assert (view.quiet_for, view.quiet_choices, view.home) == (YOU, (YOU,), "22:00-06:00 gentle")
        await ui.close()

    run(tmp_path, through, test)
