"""The hub's screen without Kivy (hugapp.ui.hubcontrol): what it shows when its hub stops; a phone's
hub made a family phone again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bleak.exc import BleakError

from hugapp.core.bandlink import BleConfig
from hugapp.core.hub import Hub, HubStore
from hugapp.ui.hubcontrol import HubControl
from hugapp.ui.phonemode import FAMILY_MODE, HUB_MODE, hub_folder, read_mode, set_mode


def test_a_hub_that_stops_says_why(tmp_path: Path) -> None:
    """A hub whose radio fails stops serving: the screen says it is not running, and why, in words."""
    store = HubStore(tmp_path / "hub")

    async def scenario() -> None:
        hub = Hub(store, "mqtt://127.0.0.1:1", BleConfig())
        control = HubControl(hub, "mqtt://127.0.0.1:1")
        serving: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        control.watch(serving)
        assert control.snapshot().running
        serving.set_exception(BleakError("No Bluetooth adapters found."))
        await asyncio.sleep(0)  # the done callback runs
        snap = control.snapshot()
        assert not snap.running
        assert not snap.online
        assert snap.broker == "the hub is not running"
        assert snap.error.startswith("The hub stopped: its Bluetooth failed (No Bluetooth adapters found.)")

    try:
        asyncio.run(scenario())
    finally:
        store.close()


def test_a_phones_hub_can_be_a_family_phone_again(tmp_path: Path) -> None:
    """On a phone in hub mode the screen offers the way back and keeps it; `hugbutton hub ui` (no
    app data folder) offers none and writes nothing."""
    data = tmp_path / "phone"
    set_mode(data, HUB_MODE)
    store = HubStore(hub_folder(data))
    try:
        hub = Hub(store, "mqtt://127.0.0.1:1", BleConfig())
        plain = HubControl(hub, "mqtt://127.0.0.1:1")
        assert not plain.snapshot().phone_hub
        plain.use_as_family_phone()
        assert read_mode(data) == HUB_MODE
        control = HubControl(hub, "mqtt://127.0.0.1:1", app_data=data)
        assert control.snapshot().phone_hub
        control.use_as_family_phone()
        assert read_mode(data) == FAMILY_MODE
        assert "close Hug Button and open it again" in control.snapshot().notice
    finally:
        store.close()
