"""Android's process layout on a desktop: the hug service (``python -m hugapp.service``, its own process)
owns the one Companion; the app's controller is its client over the window link.

Mum's phone is the service plus a client-mode controller; Mia's phone is an in-process Companion.
Both bands are virtual bands running the real firmware; the broker is the embedded one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hugapp.core import bandlink
from hugapp.core.bandlink import BleConfig
from hugapp.core.companion import Companion
from hugapp.core.store import Store
from hugapp.dev.world import PAIR_HOLD_MS, TAP_MS, open_world
from hugapp.ui.controller import Controller
from hugapp.window_link import WindowLinkError
from hugapp.window_link.api_wire import CompanionHandler
from hugapp.window_link.remote import RemoteCompanion
from hugapp.window_link.server import LinkServer


async def until(what: str, predicate: Callable[[], Any], changed: asyncio.Event, timeout: float = 30) -> Any:
    """Wait for ``predicate`` to hold, re-checking whenever a change is reported."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                value = predicate()
                if value:
                    return value
                waiter = asyncio.ensure_future(changed.wait())
                await asyncio.wait({waiter}, timeout=1.0)  # and re-check now and then, as the app does
                waiter.cancel()
    except TimeoutError:
        raise AssertionError(f"waited {timeout:.0f} s for {what}") from None


async def start_service(air: str, broker: str, data: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hugapp.dev.service",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ, HUG_AIRSPACE=air, HUG_BROKER=broker, HUG_DATA=str(data), PYTHONUNBUFFERED="1"),
    )


@pytest.mark.slow
def test_window_is_a_client_of_the_one_companion_the_service_owns(tmp_path: Path) -> None:
    async def main() -> None:
        service: asyncio.subprocess.Process | None = None
        changed = asyncio.Event()
        try:
            async with open_world(tmp_path) as world, world.companion("Mia", changed.set) as mia:
                control = world.control
                mum_band = await world.band("mum")
                mia_band = await world.band("mia")
                assert world.broker_url is not None
                service = await start_service(world.air, world.broker_url, tmp_path / "mum")
                await control.hold(mia_band.address, PAIR_HOLD_MS)
                mia_id = (
                    await mia.pair_band(await control.air_address(mia_band.address), "Mia's band")
                ).band_id

                remote = await RemoteCompanion.connect(tmp_path / "mum", on_change=changed.set, timeout=30)
                async with remote:
                    ui = Controller(remote, on_update=changed.set)
                    assert remote.service_pid == service.pid

                    # pairing from the window: scan (progress over the channel), then pair
                    await control.hold(mum_band.address, PAIR_HOLD_MS)
                    mum_on_air = await control.air_address(mum_band.address)
                    ui.bands.scan()
                    found = await until(
                        "the band in the scan",
                        lambda: next(
                            (
                                f
                                for f in ui.snapshot().bands.found
                                if f.address == mum_on_air and f.pairing_open
                            ),
                            None,
                        ),
                        changed,
                    )
                    assert found.name == "a band ready to pair"
                    ui.bands.pair(mum_on_air, "Mum's band")
                    await until(
                        "Mum's band connected",
                        lambda: (
                            [(b.name, b.connected) for b in ui.snapshot().bands.bands]
                            == [("Mum's band", True)]
                        ),
                        changed,
                    )

                    # linking from the window: the code it shows, typed on Mia's phone
                    ui.link.offer_link()
                    code = await until("a link code", lambda: ui.snapshot().link.code, changed)
                    await mia.join_link(code)
                    await until("linked", lambda: ui.snapshot().link.message == "Linked with Mia", changed)
                    assert ui.settings.save_schedule("Mon Tue Wed Thu Fri", "", "", "")
                    await until(
                        "quiet hours off", lambda: ui.snapshot().notice == "Quiet hours saved", changed
                    )
                    assert not any(remote.schedule().windows.values())  # written by the service
                    await until(
                        "Mia online (presence, pushed by the service)",
                        lambda: [(m.name, m.online) for m in ui.snapshot().home.members] == [("Mia", True)],
                        changed,
                    )
                    assert mia.relay is not None
                    await asyncio.wait_for(mia.relay.connected.wait(), 30)
                    await until("Mia's band connected", lambda: mia.connected(mia_id), changed)
                    await asyncio.sleep(1.5)  # the pairing buzzes are over

                    # a hug from the window's heart reaches Mia and buzzes her band
                    before = len(await control.motor_starts(mia_band.address))
                    ui.home.send_hug()
                    await control.wait_output(mia_band.address, "motor", lambda v: float(v) > 0, timeout=30)
                    assert len(await control.motor_starts(mia_band.address)) > before
                    await until(
                        "the hug felt",
                        lambda: (
                            [(r.direction, r.receipt) for r in ui.snapshot().history.rows]
                            == [("out", "felt")]
                        ),
                        changed,
                    )
                    assert "from the phone" in ui.snapshot().history.rows[0].text

                    # Mia presses her band: the window shows it (and Mum's band plays it)
                    before = len(await control.motor_starts(mum_band.address))
                    await control.hold(mia_band.address, TAP_MS)
                    await until(
                        "Mia's hug in the window's history",
                        lambda: any(r.text.startswith("Mia sent a hug") for r in ui.snapshot().history.rows),
                        changed,
                    )
                    await control.wait_output(mum_band.address, "motor", lambda v: float(v) > 0, timeout=30)
                    assert len(await control.motor_starts(mum_band.address)) > before

                    # one BLE link to Mum's band, the service's; the window opened none
                    nodes = {n["address"]: n for n in await control.list_nodes()}
                    links = nodes[mum_band.address]["connections"]
                    assert len(links) == 1, links
                    assert links[0]["central"] != "mia-phone"
                    await ui.close()

                service.send_signal(signal.SIGTERM)
                out, _ = await asyncio.wait_for(service.communicate(), 30)
                assert service.returncode == 0, out.decode()[-3000:]
                assert not (tmp_path / "mum" / "window_link.json").exists(), "the service cleans up on exit"
        finally:
            if service is not None and service.returncode is None:
                service.kill()
                await service.wait()

    asyncio.run(main())


def test_window_link_needs_the_token_and_keeps_error_classes(tmp_path: Path) -> None:
    """A client without the token gets nothing; errors come back with their class and words."""

    async def main() -> None:
        phone = Companion(Store(tmp_path / "companion.sqlite3"), BleConfig(), None, name="Mum")
        async with phone, LinkServer(CompanionHandler(phone), tmp_path) as server:
            info = json.loads((tmp_path / "window_link.json").read_text())
            assert info["port"] == server.port
            assert oct((tmp_path / "window_link.json").stat().st_mode & 0o777) == "0o600"

            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b'{"token": "not-the-token"}\n{"id": 1, "op": "send_hug", "args": {}}\n')
            assert await asyncio.wait_for(reader.read(), 10) == b"", "refused without a reply"
            writer.close()
            assert phone.router.history() == []

            async with await RemoteCompanion.connect(tmp_path, timeout=5) as remote:
                assert remote.identity().name == "Mum"
                with pytest.raises(bandlink.BandUnavailable, match="not paired with this phone"):
                    await remote.test_buzz("0123456789ab")
                with pytest.raises(WindowLinkError, match="unknown request"):
                    await remote.link.call("format_disk", {})
                # arguments are checked against the interface before anything runs
                with pytest.raises(ValueError, match="test_buzz's band_id must be a str"):
                    await remote.link.call("test_buzz", {"band_id": 5})
                with pytest.raises(ValueError, match="send_from_screen takes no volume"):
                    await remote.link.call("send_from_screen", {"gesture": 1, "value": 1, "volume": 11})
                with pytest.raises(ValueError, match="send_from_screen needs value"):
                    await remote.link.call("send_from_screen", {"gesture": 1})
                assert remote.history() == []
                hug_id = await remote.send_from_screen(1, 1)
                assert [h.hug_id for h in remote.history()] == [hug_id]
        assert not (tmp_path / "window_link.json").exists()
        with pytest.raises(WindowLinkError, match="not running"):
            await RemoteCompanion.connect(tmp_path, timeout=0.3)

    asyncio.run(main())
