"""UI scenarios, each run in its own process under the test's Xvfb (one Kivy window per process):

    python tests/app/ui/driver.py SCENARIO --tmp DIR --shots DIR

The scenario builds the simulated world (airspace, virtual bands running the real firmware, an
embedded broker), opens the real app (``hugapp.ui.app.run_app``) on the same asyncio loop, and drives
its widgets with touches at their on-screen positions (Kivy's own ``UnitTestTouch``), checking what
buzzed on the bands and what the screens show. Exit status 0 = passed; the traceback otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import os
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import hugapp.ui  # noqa: F401 - Kivy's environment before Kivy
from hugapp.core.bandlink import LinkState
from hugapp.core.companion import Companion
from hugapp.core.coowners import served_wearers
from hugapp.core.hub import Hub, HubStore, offer_enrolment
from hugapp.core.hugs import Receipt
from hugapp.core.schedule import DayType
from hugapp.dev import world as sim
from hugapp.dev.radio import ble_config
from hugapp.dev.world import NO_QUIET_HOURS, PAIR_HOLD_MS, TAP_MS
from hugapp.ui.app import ChangeBell, HugApp, run_app
from hugapp.ui.phonemode import FAMILY_MODE, HUB_MODE, read_mode
from hugapp.window_link.remote import RemoteCompanion
from hugsim.band.process import BandProcess

# ------------------------------------------------------------------------------------------ driving


def find(widget: Any, pred: Callable[[Any], bool]) -> Any:
    for w in widget.walk(restrict=True):
        if pred(w):
            return w
    raise AssertionError("no such widget")


def find_text(root: Any, text: str) -> Any:
    return find(root, lambda w: getattr(w, "text", None) == text and hasattr(w, "trigger_action"))


async def tap(widget: Any) -> None:
    """A real touch at the widget's centre, dispatched through the window (hit-testing included);
    a widget in a scrolled list is scrolled into view first, as a person would."""
    from kivy.tests.common import UnitTestTouch
    from kivy.uix.scrollview import ScrollView

    assert not widget.disabled, f"{widget} is disabled"
    parent, depth = widget.parent, 0
    while parent is not None and not isinstance(parent, ScrollView) and depth < 40:  # Window: own parent
        parent, depth = parent.parent, depth + 1
    if isinstance(parent, ScrollView):
        parent.scroll_to(widget, animate=False)
        await frames(3)
    x, y = widget.to_window(*widget.center)
    touch = UnitTestTouch(x, y)
    touch.touch_down()
    touch.touch_up()


async def until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.05)  # polling widget state: Kivy properties change on frames
    raise AssertionError(what)


async def frames(n: int = 3) -> None:
    await asyncio.sleep(0.05 * n)


class World:
    """The kit's world (hugapp.dev.world), with the bands by name and the screenshots folder."""

    def __init__(self, world: sim.World, shots: Path) -> None:
        self.world = world
        self.tmp = world.tmp
        self.shots = shots
        self.air = world.air
        self.control = world.control
        self.broker_url = world.broker_url or ""
        self.stack = world.stack
        self.bands: dict[str, BandProcess] = {}

    async def band(self, name: str) -> str:
        band = await self.world.band(name)
        self.bands[name] = band
        return band.address

    def companion(self, name: str, on_change: Callable[[], None]) -> Companion:
        return self.world.companion(name, on_change)

    def shot(self, app: HugApp, name: str) -> None:
        app.screenshot(self.shots / f"{name}.png")


@contextlib.asynccontextmanager
async def world(tmp: Path, shots: Path) -> AsyncIterator[World]:
    async with sim.open_world(tmp) as w:
        yield World(w, shots)


async def drive_window(
    open_window: Callable[[Callable[[Any], None]], Awaitable[None]],
    scenario: Callable[[Any], Any],
    what: str,
) -> None:
    """Run ``open_window(app_ready)`` (it returns when the window is closed) and ``scenario(app)``
    beside it once the app has started; then close the window, and raise what the scenario raised."""
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    outcome: list[BaseException] = []

    async def drive() -> None:
        app = await ready
        await until(lambda: app.root is not None and app.snapshot is not None, 20, what)
        await frames(4)
        try:
            await scenario(app)
        except BaseException as exc:  # noqa: BLE001 - reported after the window closes
            outcome.append(exc)
        finally:
            app.stop()

    driver = asyncio.ensure_future(drive())
    await open_window(ready.set_result)
    await driver
    if outcome:
        raise outcome[0]


async def with_app(
    phone: Companion | RemoteCompanion, bell: ChangeBell, scenario: Callable[[HugApp], Any]
) -> None:
    """Open the app on ``phone`` (in-process, or the service's) and run ``scenario(app)`` beside it;
    close the window after."""
    await drive_window(lambda ready: run_app(phone, bell, app_ready=ready), scenario, "the app started")


def popup(kind: str) -> Any:
    """The open popup of a kv class (popups sit on the window, not in the app's tree)."""
    from kivy.core.window import Window

    for child in Window.children:
        if type(child).__name__ == kind:
            return child
    raise AssertionError(f"no {kind} open")


async def pair_as(app: HugApp, choice: str, new_name: str = "", address: str = "") -> None:
    """Tap Pair on the band found (at ``address``, or the first), then answer whose band it is: a
    button (``choice``, e.g. "Mine band"), or a new person without a phone (``new_name``)."""
    found = app.screen("bands").ids.found_box
    if address:
        found = find(found, lambda x: getattr(x, "address", "") == address and hasattr(x, "can_pair"))
    await tap(find_text(found, "Pair"))
    whose = await until(lambda: _maybe(lambda: popup("WhosePopup")), 5, "whose band is it?")
    await frames(4)
    if new_name:
        whose.ids.new_name.text = new_name
        await frames()
        await tap(find_text(whose, "Their band"))
    else:
        await tap(find_text(whose, choice))


async def choose(spinner: Any, text: str) -> None:
    """Open a spinner and tap one of its choices (the list opens on the window)."""
    await tap(spinner)
    dropdown = await until(lambda: _maybe(lambda: popup("DropDown")), 5, "the spinner's choices")
    await frames(4)
    await tap(find_text(dropdown, text))
    await until(lambda: spinner.text == text, 5, f"{text} chosen")
    await frames()


def _maybe(get: Callable[[], Any]) -> Any:
    try:
        return get()
    except AssertionError:
        return None


async def go(app: HugApp, name: str) -> None:
    await tap(app.root.ids[f"nav_{name}"])


# ------------------------------------------------------------------------------------------ scenarios


async def heart_buzzes(w: World, app: HugApp, address: str) -> None:
    """Tap the big heart on Home: the band paired with this phone starts a new buzz."""
    await go(app, "home")
    await frames(4)
    before = len(await w.control.motor_starts(address))
    await tap(app.screen("home").ids.heart)
    deadline = time.monotonic() + 15  # a new start: the motor may still be on from the pairing buzz
    while len(await w.control.motor_starts(address)) <= before:
        assert time.monotonic() < deadline, "the band did not buzz within 15 s of the heart's tap"
        await asyncio.sleep(0.1)


async def pair_and_hug(w: World) -> None:
    """The pairing flow with its countdown, then the phone's heart makes the band buzz; every screen."""
    address = await w.band("Mia")
    bell = ChangeBell()
    phone = w.companion("Mum", bell)

    async def scenario(app: HugApp) -> None:
        await go(app, "bands")
        await frames()
        await tap(app.screen("bands").ids.scan_button)
        await until(lambda: app.screen("bands").found, 15, "the band found by the scan")
        row = app.screen("bands").found[0]
        assert row["address"] == await w.control.air_address(address), row  # where it advertises now
        assert (row["name"], row["status"]) == ("a Hug band", "not paired"), row  # no name on the air
        await until(lambda: not app.screen("bands").scanning, 10, "the scan ends")
        await frames()
        await pair_as(app, "Mine band")
        await until(lambda: app.screen("bands").countdown == 5, 5, "the 5-second countdown")
        assert "Hold your band's heart" in app.screen("bands").pair_message
        hold = asyncio.ensure_future(w.control.hold(address, PAIR_HOLD_MS))  # the wearer holds the heart
        await until(lambda: app.screen("bands").countdown <= 3, 5)
        w.shot(app, "bands-pairing")
        await hold
        await until(lambda: app.screen("bands").bands, 30, "the band paired")
        await until(lambda: app.screen("bands").bands[0]["connected"], 30, "the band connected")
        assert app.screen("bands").bands[0]["name"] == "Hug band"  # until someone renames it
        await asyncio.sleep(1.5)  # the pairing buzz is over
        await frames()
        w.shot(app, "bands")

        # the big heart on Home: the band on this phone buzzes
        await heart_buzzes(w, app, address)
        await until(lambda: phone.router.history() and phone.router.history()[0].receipt is Receipt.FELT, 15)
        await frames(4)
        w.shot(app, "home")

        await go(app, "history")
        await until(lambda: app.screen("history").rows, 5)
        row = app.screen("history").rows[0]
        assert row["receipt"] == "felt", row
        assert "from the phone" in row["text"], row
        assert sum(c["sent"] for c in app.screen("history").chart) == 1
        await frames(4)
        w.shot(app, "history")

        # test buzz from the Bands screen
        await go(app, "bands")
        await frames(4)
        before = len(await w.control.motor_starts(address))
        await tap(find_text(app.screen("bands").ids.bands_box, "Test buzz"))
        await w.control.wait_output(address, "motor", lambda v: float(v) > 0, timeout=15)
        assert len(await w.control.motor_starts(address)) > before

        # settings: quiet hours in words, a wrong one is refused in words
        await go(app, "settings")
        await frames(4)
        ids = app.screen("settings").ids
        ids.school_input.text = "21:00-07:00 hold, 09:00-15:00 gentle"
        ids.home_input.text = "soon"
        await tap(ids.save_schedule)
        await until(lambda: "isn't a quiet window" in app.root.error, 5, "the error in words")
        ids.home_input.text = "22:00-08:00 hold"
        ids.overrides_input.text = "2030-12-24 home"
        await tap(ids.save_schedule)
        await until(lambda: not app.root.error, 5)
        saved = phone.router.schedule()
        assert [f"{x.start:%H:%M}" for x in saved.windows[DayType.HOME]] == ["22:00"]
        assert len(saved.overrides) == 1
        phone.router.set_schedule(NO_QUIET_HOURS)
        await frames(4)
        w.shot(app, "settings")

        # the child's device mode behind a parent PIN
        ids.pin_input.text = "2468"
        await tap(ids.child_button)
        await until(lambda: app.root.ids.sm.current == "child", 5, "child mode")
        await frames(6)
        w.shot(app, "child")
        child = app.screen("child")
        await tap(child.ids.parent_button)
        await until(lambda: child.asking_pin, 5)
        await frames()
        child.ids.pin_input.text = "1111"
        await tap(child.ids.parent_button)
        await until(lambda: app.root.error == "That PIN isn't right", 5)
        assert app.root.ids.sm.current == "child"
        child.ids.pin_input.text = "2468"
        await tap(child.ids.parent_button)
        await until(lambda: app.root.ids.sm.current == "home", 5, "back to the parent's screens")

    async with phone:
        await with_app(phone, bell, scenario)


async def two_phones(w: World) -> None:
    """Linking between the app (Mum) and a second phone (Mia, headless), then hugs both ways."""
    mum_band = await w.band("Mum")
    mia_band = await w.band("Mia")
    bell = ChangeBell()
    mum = w.companion("Mum", bell)
    mia = w.companion("Mia", lambda: None)

    async def scenario(app: HugApp) -> None:
        await asyncio.gather(w.control.hold(mum_band, PAIR_HOLD_MS), w.control.hold(mia_band, PAIR_HOLD_MS))
        on_air = [await w.control.air_address(b) for b in (mum_band, mia_band)]
        paired = await asyncio.gather(
            mum.pair_band(on_air[0], "Mum's band"), mia.pair_band(on_air[1], "Mia's band")
        )
        ids = [p.band_id for p in paired]

        await go(app, "link")
        await frames(4)
        # a code typed wrong is refused in words
        link = app.screen("link")
        link.ids.code_input.text = "nope"
        await tap(link.ids.join_button)
        await until(lambda: "isn't a Hug Button code" in app.root.error, 10, "the error in words")
        await tap(app.root.ids.banner)
        await until(lambda: not app.root.error, 5)

        await tap(link.ids.offer_button)
        code = await until(lambda: link.code, 15, "a code shown")
        assert link.qr_texture is not None
        await frames(4)
        w.shot(app, "link-code")
        await mia.join_link(code)  # the other phone types it
        await until(lambda: [m["name"] for m in link.members] == ["Mia"], 20, "Mia in the circle")
        await until(lambda: not link.code, 5)
        await frames(4)
        w.shot(app, "link")

        for phone, band_id in zip((mum, mia), ids, strict=True):
            await until(lambda p=phone, b=band_id: p.connected(b), 30, "bands connected")
            assert phone.relay is not None
            await asyncio.wait_for(phone.relay.connected.wait(), 10)
        await asyncio.sleep(1.5)  # the pairing buzzes are over

        # Mum taps the heart on the phone: Mia's band buzzes, Mum sees it felt
        await go(app, "home")
        await frames(4)
        before = len(await w.control.motor_starts(mia_band))
        await tap(app.screen("home").ids.heart)
        await until(lambda: mum.router.history() and mum.router.history()[0].receipt is Receipt.FELT, 30)
        assert len(await w.control.motor_starts(mia_band)) > before

        # Mia presses her band: Mum's band buzzes; Home offers a hug back; History shows it
        before = len(await w.control.motor_starts(mum_band))
        await w.control.hold(mia_band, TAP_MS)
        await until(lambda: app.screen("home").hug_back_from == "Mia", 30, "hug Mia back")
        await w.control.wait_output(mum_band, "motor", lambda v: float(v) > 0, timeout=20)
        assert len(await w.control.motor_starts(mum_band)) > before
        home = app.screen("home")
        await until(lambda: home.members and home.members[0]["hugs_today"] >= 2, 10)
        await frames(4)
        w.shot(app, "home-circle")
        await tap(app.screen("home").ids.hug_back)
        await until(lambda: sum(1 for h in mia.router.history() if h.direction == "in") == 2, 30, "hug back")

        await go(app, "history")
        await until(lambda: len(app.screen("history").rows) == 3, 10)

        def texts() -> list[tuple[str, str]]:
            return [(r["text"], r["receipt"]) for r in app.screen("history").rows]

        # "a hug", or "a hug back" when Mia's press came within 10 s of feeling Mum's
        await until(lambda: any(t.startswith("Mia sent a hug") and r == "felt" for t, r in texts()), 20)
        await until(lambda: sum(1 for r in app.screen("history").rows if r["receipt"] == "felt") == 3, 30)
        await frames(4)
        w.shot(app, "history-circle")

    async with mum, mia:
        await with_app(mum, bell, scenario)


async def phoneless_child(w: World) -> None:
    """Mia has no phone: Mum pairs Mia's band on her phone as a new person's band; Home shows Mia with
    her band's state; Mia's press is a hug from Mia, named so in History; the gateway co-owns it;
    Settings sets Mia's quiet hours (chosen by her name), which reach the gateway too."""
    mia_band = await w.band("Mia")
    mum_band = await w.band("Mum")
    bell = ChangeBell()
    mum = w.companion("Mum", bell)
    home_gw = w.world.companion("Home", lambda: None)

    async def scenario(app: HugApp) -> None:
        await w.control.hold(mum_band, PAIR_HOLD_MS)
        mum_id = (await mum.pair_band(await w.control.air_address(mum_band), "Mum's band")).band_id
        await go(app, "bands")
        await frames()
        await tap(app.screen("bands").ids.scan_button)
        mia_air = await w.control.air_address(mia_band)  # where it advertises now
        await until(
            lambda: any(f["address"] == mia_air for f in app.screen("bands").found), 15, "Mia's band found"
        )
        await until(lambda: not app.screen("bands").scanning, 10, "the scan ends")
        await frames()
        hold = asyncio.ensure_future(w.control.hold(mia_band, PAIR_HOLD_MS))
        await pair_as(app, "", new_name="Mia", address=mia_air)
        await hold
        await until(lambda: len(app.screen("bands").bands) == 2, 30, "Mia's band paired")
        rows = {b["band_id"]: b for b in app.screen("bands").bands}
        (mia_id,) = set(rows) - {mum_id}
        assert rows[mia_id]["wearer"] == "Mia", rows
        assert rows[mum_id]["wearer"] == "you", rows
        assert rows[mia_id]["name"] == "Mia's band", rows
        await until(lambda: mum.connected(mia_id) and mum.connected(mum_id), 30, "both connected")

        # the home gateway joins and co-owns Mia's band (Share on the Bands screen)
        offer = await mum.offer_link()
        await home_gw.join_link(offer.code)
        await offer.wait()
        await frames(4)
        row = find(
            app.screen("bands").ids.bands_box,
            lambda x: getattr(x, "band_id", "") == mia_id and hasattr(x, "co_owners"),
        )
        await tap(find_text(row, "Share"))
        share = await until(lambda: _maybe(lambda: popup("SharePopup")), 5, "the share popup")
        await frames(4)
        await tap(find_text(share, "Home"))
        await until(
            lambda: any(b.band_id == mia_id for b in home_gw.store.bands()), 30, "the gateway co-owns it"
        )
        await until(lambda: "Home" in {b["co_owners"] for b in app.screen("bands").bands}, 10)
        w.shot(app, "bands-wearers")

        # Home: Mia's card with her band's state
        await go(app, "home")
        home = app.screen("home")
        await until(lambda: any(m["name"] == "Mia" for m in home.members), 10, "Mia on Home")
        await until(
            lambda: "connected via this phone" in next(m for m in home.members if m["name"] == "Mia")["band"],
            30,
            "Mia's band state on her card",
        )
        assert next(m for m in home.members if m["name"] == "Mia")["status"].startswith("no phone")
        await asyncio.sleep(1.5)
        # Mia presses: Mum's band buzzes; History names Mia
        before = len(await w.control.motor_starts(mum_band))
        await w.control.hold(mia_band, TAP_MS)
        await w.control.wait_output(mum_band, "motor", lambda v: float(v) > 0, timeout=20)
        assert len(await w.control.motor_starts(mum_band)) > before
        await go(app, "history")
        await until(lambda: app.screen("history").rows, 10)
        await until(
            lambda: app.screen("history").rows[0]["text"].startswith("Mia sent a hug"), 10, "Mia named"
        )
        await until(lambda: app.screen("history").rows[0]["receipt"] == "felt", 20)
        await frames(4)
        w.shot(app, "history-wearer")
        await go(app, "home")
        await frames(6)
        w.shot(app, "home-wearers")

        # Settings: Mia's quiet hours, chosen by her name; the gateway co-owning her band gets them
        (mia,) = served_wearers(mum.store, mum.me.member_id)
        mums = mum.router.schedule().to_settings()
        await go(app, "settings")
        await frames(4)
        settings = app.screen("settings")
        ids = settings.ids
        await choose(ids.quiet_for, "Mia")
        await until(lambda: settings.quiet_for == "Mia", 5, "Mia chosen")
        ids.school_input.text = "19:30-07:00 hold, 09:00-15:00 gentle"
        ids.home_input.text = "20:00-08:00 hold"
        await tap(ids.save_schedule)
        await until(lambda: app.root.notice == "Quiet hours saved for Mia", 10, "saved for Mia")
        saved = mum.router.schedule(mia.member_id)
        assert [f"{x.start:%H:%M}" for x in saved.windows[DayType.HOME]] == ["20:00"]
        assert mum.router.schedule().to_settings() == mums, "Mum's own quiet hours unchanged"
        await until(
            lambda: home_gw.router.schedule(mia.member_id).to_settings() == saved.to_settings(),
            30,
            "Mia's quiet hours on the gateway",
        )
        await frames(4)
        w.shot(app, "settings-wearer")
        await choose(ids.quiet_for, "You")  # the fields show whose quiet hours are chosen
        await until(lambda: ids.home_input.text == "", 5, "your quiet hours (none) shown")
        await choose(ids.quiet_for, "Mia")
        await until(lambda: ids.home_input.text == "20:00-08:00 hold", 5, "Mia's shown again")

    async with mum, home_gw:
        await with_app(mum, bell, scenario)


async def at_school(w: World) -> None:
    """Bands → School: Mum types the code the class hub shows; the hub serves Mia's band at school
    (out of Mum's range), the row says so, and Mia's press reaches Mum through it; then Mum stops the
    hub serving it."""
    mia_band = await w.band("Mia")
    bell = ChangeBell()
    mum = w.companion("Mum", bell)
    class_hub = Hub(HubStore(w.tmp / "class-hub"), w.broker_url, ble_config(w.air, "hub"))
    class_hub.store.set_name("Class 2")  # `hugbutton hub name "Class 2"`
    hub_task = asyncio.ensure_future(class_hub.run())

    async def scenario(app: HugApp) -> None:
        await w.control.hold(mia_band, PAIR_HOLD_MS)
        found = await mum.pair_band(await w.control.air_address(mia_band), "Mia's band", new_wearer="Mia")
        mia_id = found.band_id
        await until(lambda: mum.connected(mia_id), 30, "Mia's band connected")
        await go(app, "bands")
        await frames(4)
        offer = await offer_enrolment(class_hub.store, w.broker_url)
        row = find(app.screen("bands").ids.bands_box, lambda x: getattr(x, "band_id", "") == mia_id)
        await tap(find_text(row, "School"))
        school = await until(lambda: _maybe(lambda: popup("SchoolPopup")), 5, "the school popup")
        await frames(4)
        school.ids.hub_code_input.text = offer.qr_text()  # what a QR scanner reads from the hub
        await tap(find_text(school, "Enrol at the class hub"))
        await offer.wait()
        await until(lambda: mum.store.band_hub(mia_id) is not None, 15, "enrolled")
        await until(lambda: app.screen("bands").bands[0]["at_school"], 10, "the row knows")
        await w.control.out_of_range(mia_band, central="mum-phone")  # Mia goes to school
        await until(  # linked through the hub, or idle there (the hub let the link go)
            lambda: app.screen("bands").bands[0]["state"].startswith("at school, via the Class 2 hub"),
            40,
            "at school",
        )
        await frames(4)
        w.shot(app, "bands-at-school")
        before = len(mum.store.presses(mia_id))
        await w.control.hold(mia_band, TAP_MS)
        await until(lambda: len(mum.store.presses(mia_id)) == before + 1, 30, "Mia's press via the hub")
        row = find(app.screen("bands").ids.bands_box, lambda x: getattr(x, "band_id", "") == mia_id)
        await tap(find_text(row, "School"))
        school = await until(lambda: _maybe(lambda: popup("SchoolPopup")), 5, "the school popup again")
        await frames(4)
        await tap(find_text(school, "Stop the hub serving it"))
        await until(lambda: mum.store.band_hub(mia_id) is None, 15, "left the hub")
        await until(lambda: class_hub.store.enrolments() == [], 15, "the hub forgot it")

    try:
        async with mum:
            await with_app(mum, bell, scenario)
    finally:
        hub_task.cancel()
        await asyncio.gather(hub_task, return_exceptions=True)
        class_hub.store.close()


async def sim_band_window(w: World) -> None:
    """The virtual band's window: the space bar holds the band's heart (pairing), the mouse taps it
    (a press reaches the phone), and a buzz shows on the window."""
    from kivy.core.window import Window

    from hugapp.dev.simband import SimBandApp

    address = await w.band("Mia")
    phone = w.companion("Mum", lambda: None)
    app = SimBandApp(w.air, address)

    async def scenario() -> None:
        await until(lambda: app.root is not None and app.status.startswith("space bar"), 20, "window ready")
        Window.dispatch("on_key_down", 32, 0, " ", [])  # space bar held 5.3 s: the pairing window
        await asyncio.sleep(PAIR_HOLD_MS / 1000)
        Window.dispatch("on_key_up", 32, 0)
        band_id = (await phone.pair_band(await w.control.air_address(address), "Mia's band")).band_id
        await until(lambda: phone.connected(band_id), 30, "connected")
        await asyncio.sleep(1.5)
        buzzes = app.buzzes
        await phone.test_buzz(band_id)
        await until(lambda: app.buzzes > buzzes and app.motor > 0, 10, "the window shows the buzz")
        await frames(3)
        made = Window.screenshot(str(w.shots / "simband") + "-%(counter)04d.png")
        os.replace(made, w.shots / "simband.png")
        await until(lambda: app.motor == 0, 10)
        await asyncio.sleep(0.5)
        heart = app.root.ids.heart
        x, y = heart.to_window(*heart.center)
        from kivy.tests.common import UnitTestTouch

        touch = UnitTestTouch(x, y)
        touch.touch_down()
        await asyncio.sleep(0.25)  # a tap (< 0.6 s) a band's debounce sees even on a loaded machine
        touch.touch_up()
        assert app.presses == 2, (app.presses, app.status)
        await until(lambda: phone.store.presses(band_id), 15, "the press reached the phone")

    outcome: list[BaseException] = []

    async def drive() -> None:
        try:
            await scenario()
        except BaseException as exc:  # noqa: BLE001 - reported after the window closes
            outcome.append(exc)
        finally:
            app.stop()

    async with phone:
        driver = asyncio.ensure_future(drive())
        try:
            await app.async_run(async_lib="asyncio")
        finally:
            await app.close()
        await driver
    if outcome:
        raise outcome[0]


async def service_client(w: World) -> None:
    """Android's layout: the hug service (its own process) owns the companion and the window is its
    client: pair from the window, then its heart makes the band buzz; one BLE link to the band. Then
    Settings makes the phone the class hub from its next start (after a confirm)."""
    address = await w.band("Mum")
    data = w.tmp / "service"
    service = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hugapp.dev.service",
        env=dict(os.environ, HUG_AIRSPACE=w.air, HUG_BROKER=w.broker_url, HUG_DATA=str(data)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def stop_service() -> None:
        if service.returncode is None:
            service.terminate()
            await asyncio.wait_for(service.wait(), 15)

    w.stack.push_async_callback(stop_service)
    bell = ChangeBell()
    remote = await RemoteCompanion.connect(data, on_change=bell, timeout=30)
    w.stack.push_async_callback(remote.close)
    await remote.set_schedule(NO_QUIET_HOURS)  # the heart must buzz at any hour the test runs

    async def scenario(app: HugApp) -> None:
        await w.control.hold(address, PAIR_HOLD_MS)  # the wearer opens the pairing window first
        await go(app, "bands")
        await frames()
        await tap(app.screen("bands").ids.scan_button)
        await until(lambda: app.screen("bands").found, 15, "the band found by the scan")
        await until(lambda: not app.screen("bands").scanning, 10, "the scan ends")
        await frames()
        await pair_as(app, "Mine band")
        await until(lambda: app.screen("bands").bands, 30, "the band paired")
        await until(lambda: app.screen("bands").bands[0]["connected"], 30, "the band connected")
        await asyncio.sleep(1.5)  # the pairing buzz is over
        await heart_buzzes(w, app, address)
        await go(app, "history")
        await until(lambda: [r["receipt"] for r in app.screen("history").rows] == ["felt"], 15, "felt")
        nodes = {n["address"]: n for n in await w.control.list_nodes()}
        assert len(nodes[address]["connections"]) == 1, nodes[address]["connections"]
        assert remote.service_pid == service.pid

        # Settings: this phone as the class hub, kept in the app's data folder once confirmed
        await go(app, "settings")
        await frames(4)
        hub_button = app.screen("settings").ids.hub_button

        async def confirm(answer: str) -> None:
            await tap(hub_button)
            asked = await until(lambda: _maybe(lambda: popup("HubModePopup")), 5, "the confirm popup")
            await frames(4)
            await tap(find_text(asked, answer))
            await frames(4)

        await confirm("Keep it a family phone")
        assert read_mode(data) == FAMILY_MODE
        await confirm("Make it the class hub")
        await until(lambda: read_mode(data) == HUB_MODE, 5, "the phone is the class hub from its next start")
        await until(lambda: "close Hug Button and open it again" in app.root.notice, 5, "it says so")

    await with_app(remote, bell, scenario)
    await stop_service()
    assert service.returncode == 0, service.returncode


SCENARIOS = {
    "pair_and_hug": pair_and_hug,
    "two_phones": two_phones,
    "sim_band_window": sim_band_window,
    "phoneless_child": phoneless_child,
    "service_client": service_client,
    "at_school": at_school,
}


async def main(name: str, tmp: Path, shots: Path) -> None:
    async with world(tmp, shots) as w:
        await SCENARIOS[name](w)
    # all tasks we started are gone with the world; the loop closes after this
    _ = LinkState


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--shots", required=True)
    parser.add_argument("--timeout", type=float, default=100)
    a = parser.parse_args()
    Path(a.shots).mkdir(parents=True, exist_ok=True)
    faulthandler.dump_traceback_later(a.timeout + 10, exit=True)  # a blocked loop still reports where
    try:
        asyncio.run(asyncio.wait_for(main(a.scenario, Path(a.tmp), Path(a.shots)), a.timeout))
    except BaseException:  # noqa: BLE001 - any failure is the scenario's failure
        traceback.print_exc()
        sys.exit(1)
    print("SCENARIO PASSED", flush=True)
