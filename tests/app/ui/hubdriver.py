"""The classroom hub's own screen (``hugapp.ui.hubscreen``), each scenario in its own process under the
test's Xvfb, driven with real touches as driver.py drives the family app:

    python tests/app/ui/hubdriver.py SCENARIO --tmp DIR --shots DIR

The hub serves on the simulated radio (its own central, "hub") and a real embedded broker; a parent's
app is played by an owner's store that types the code read off the screen (``enrol_at_hub``). Exit
status 0 = passed; the traceback otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import os
import re
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driver import (  # first: Kivy's environment before Kivy
    drive_window,
    find,
    find_text,
    frames,
    popup,
    tap,
    until,
)

from hugapp.core.hub import HubStore, enrol_at_hub
from hugapp.core.linking import CODE_TTL_S, HUB, CodeNotFound, qr_png
from hugapp.core.store import Store
from hugapp.dev import world as sim
from hugapp.dev.radio import ble_config
from hugapp.ui.hubscreen import HubApp, run_hub_ui
from hugapp.ui.phonemode import FAMILY_MODE, HUB_MODE, hub_folder, read_mode, set_mode
from hugapp.ui.screens import png_texture

BAND_ID = "b0b0b0b0b0b0"


async def with_hub_app(
    w: sim.World,
    folder: Path,
    broker_url: str,
    scenario: Callable[[HubApp], Any],
    app_data: Path | None = None,
) -> None:
    """Open the hub's screen (its hub serving on the world's radio) and run ``scenario(app)`` beside
    it; close the window after. ``app_data``: a phone's data folder (the app's hub mode)."""
    radio = ble_config(w.air, "hub")
    await drive_window(
        lambda ready: run_hub_ui(folder, broker_url, radio, app_ready=ready, app_data=app_data),
        scenario,
        "the hub's screen",
    )


def on_disk(folder: Path) -> tuple[str, list[str]]:
    """The hub's name and enrolment ids as its files hold them (read by a second opener)."""
    store = HubStore(folder)
    try:
        return store.name, [e.enrolment_id for e in store.enrolments()]
    finally:
        store.close()


def texts(widget: Any) -> str:
    """Every text the screen shows, in one string."""
    return "\n".join(str(getattr(x, "text", "")) for x in widget.walk(restrict=True))


async def shot(app: HubApp, shots: Path, name: str) -> None:
    await frames(4)
    app.screenshot(shots / f"{name}.png")


async def confirm_popup(kind: str = "RemoveBandPopup") -> Any:
    found = await until(lambda: _open(kind), 5, "the confirm popup")
    await frames(4)
    return found


def _open(kind: str) -> Any:
    try:
        return popup(kind)
    except AssertionError:
        return None


async def hub_screen(w: sim.World, shots: Path) -> None:
    """An old phone in hub mode: rename (refused names change nothing), a code that expires, a code
    cancelled, a band enrolled by the code read off the screen, and removed after a confirm; then the
    phone is a family phone again from its next start, after a confirm."""
    broker_url = w.broker_url
    assert broker_url is not None
    phone = w.tmp / "old-phone"  # the app's data folder
    set_mode(phone, HUB_MODE)
    folder = hub_folder(phone)
    owner = Store(w.tmp / "owner.sqlite3")  # the parent's app: a band and its key
    owner.save_band(BAND_ID, "Mia's band", os.urandom(16))

    async def scenario(app: HubApp) -> None:
        root = app.root
        await until(lambda: root.online, 20, "the broker online")
        assert "0 band(s) enrolled" in root.counts, root.counts
        assert "No band enrolled yet" in texts(root.ids.bands_box)

        # the name parents see: a name that is not one is refused in words and changes nothing
        for bad in ("x" * 41, "Class\x1b[2J 2"):
            root.ids.name_input.text = bad
            await tap(root.ids.rename_button)
            await until(lambda: "at most 40 printable characters" in root.error, 5, "refused in words")
            await frames(4)
            assert on_disk(folder)[0] == ""
            assert root.title == "Class hub (no name yet)"
            await tap(root.ids.banner)
            await until(lambda: not root.error, 5, "the error dismissed")
            await frames(4)
        root.ids.name_input.text = " Class 2 "
        await tap(root.ids.rename_button)
        await until(lambda: root.title == "Class 2 hub", 5, "renamed")
        assert on_disk(folder)[0] == "Class 2"
        assert root.ids.name_input.text == "Class 2"
        await frames(4)  # the banner's notice moves what is under it

        # a code nobody types expires, and says so
        app.control.code_ttl = 2.0
        await tap(root.ids.enrol_button)
        await until(lambda: "expired" in root.error, 20, "the code's expiry in words")
        assert not root.code
        assert on_disk(folder)[1] == []
        await frames(4)
        await tap(root.ids.banner)
        await until(lambda: not root.error, 5, "the error dismissed")
        await frames(4)
        app.control.code_ttl = CODE_TTL_S

        # a code cancelled reaches nothing
        await tap(root.ids.enrol_button)
        cancelled = await until(lambda: root.ids.code_label.text, 15, "a code")
        await frames(4)
        await tap(root.ids.cancel_button)
        await until(lambda: not root.code and root.ids.enrol_button.parent is not None, 5, "cancelled")
        await frames(4)
        try:
            await enrol_at_hub(cancelled, owner, BAND_ID, broker_url, timeout=3)
            raise AssertionError("a cancelled code enrolled a band")
        except CodeNotFound:
            pass
        assert on_disk(folder)[1] == []

        # a parent types the code read off the screen
        await tap(root.ids.enrol_button)
        code = await until(lambda: root.ids.code_label.text, 15, "a code on the screen")
        assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}", code), code
        assert CODE_TTL_S - 10 <= root.expires_in <= CODE_TTL_S, root.expires_in
        assert "Bands -> At school" in root.message, root.message
        qr = png_texture(qr_png(code, scale=8, purpose=HUB))  # the QR reads hugbutton:hub:<code>
        assert root.qr_texture is not None
        assert root.qr_texture.pixels == qr.pixels
        await shot(app, shots, "hub-enrol")
        enrolment = await enrol_at_hub(code, owner, BAND_ID, broker_url)
        await until(lambda: root.notice == "Band enrolled", 15, "it says so")
        await until(lambda: [b["enrolment_id"] for b in root.bands] == [enrolment], 5, "the list grows")
        assert on_disk(folder)[1] == [enrolment]
        await until(lambda: "1 band(s) enrolled" in root.counts, 10, "the status counts it")
        assert owner.band_hub_name(BAND_ID) == "Class 2"  # the name travelled with the enrolment
        shown = texts(root)
        assert enrolment in shown
        assert "Mia" not in shown, shown  # nothing of the family
        assert BAND_ID not in shown, shown
        await shot(app, shots, "hub")

        # Remove asks first: Keep it keeps it, Remove removes it
        row = find(root.ids.bands_box, lambda x: getattr(x, "enrolment_id", "") == enrolment)
        await tap(find_text(row, "Remove"))
        await tap(find_text(await confirm_popup(), "Keep it"))
        await frames(4)
        assert on_disk(folder)[1] == [enrolment]
        await tap(find_text(row, "Remove"))
        await tap(find_text(await confirm_popup(), "Remove"))
        await until(lambda: on_disk(folder)[1] == [], 5, "removed from the store")
        await until(lambda: root.bands == [], 5, "removed from the list")
        await until(lambda: "0 band(s) enrolled" in root.counts, 10, "the status counts none")

        # a family phone again from the next start: Stay a hub keeps it a hub
        await tap(root.ids.family_button)
        await tap(find_text(await confirm_popup("FamilyPhonePopup"), "Stay a hub"))
        await frames(4)
        assert read_mode(phone) == HUB_MODE
        await tap(root.ids.family_button)
        await tap(find_text(await confirm_popup("FamilyPhonePopup"), "Use as a family phone"))
        await until(lambda: read_mode(phone) == FAMILY_MODE, 5, "a family phone from the next start")
        await until(lambda: "close Hug Button and open it again" in root.notice, 5, "it says so")

    try:
        await with_hub_app(w, folder, broker_url, scenario, app_data=phone)
    finally:
        owner.close()


async def hub_offline(w: sim.World, shots: Path) -> None:
    """No broker answers: the status says so and Enrol a band says why it cannot, in words."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker_url = f"mqtt://user:secret@127.0.0.1:{port}"

    async def scenario(app: HubApp) -> None:
        root = app.root
        await asyncio.sleep(2.0)  # the hub has tried the broker by now
        assert not root.online
        assert root.broker == "broker NOT reachable"
        await tap(root.ids.enrol_button)
        await until(lambda: "Can't reach the broker" in root.error, 15, "the error in words")
        assert f"127.0.0.1:{port}" in root.error, root.error
        assert "secret" not in root.error, root.error
        await until(lambda: root.ids.enrol_button.parent is not None, 5, "Enrol a band again")
        assert not root.code
        assert not root.message
        assert root.ids.family_button.disabled  # `hugbutton hub ui`: no family app to go back to
        assert root.ids.family_button.height == 0
        await shot(app, shots, "hub-offline")

    await with_hub_app(w, w.tmp / "class-hub", broker_url, scenario)


SCENARIOS = {"hub_screen": hub_screen, "hub_offline": hub_offline}


async def main(name: str, tmp: Path, shots: Path) -> None:
    async with sim.open_world(tmp, broker=name != "hub_offline") as w:
        await SCENARIOS[name](w, shots)


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
