"""bleak's own Linux BlueZ backend (unmodified, no backend argument) against the simulated BlueZ
(``python -m hugsim.phone.bluez``), fronting an airspace with the real firmware on a virtual band.

Each test runs in its own ``asyncio.run`` (bleak keeps one BlueZ manager per event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pairkit
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakGATTProtocolError, BleakGATTProtocolErrorCode
from bluez_support import pid_alive, simulated_bluez, start_bluez, stop_bluez

from hugapp.core.bandlink import BleConfig, find_band
from hugproto import frames, gatt
from hugproto.errors import ProtocolError
from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.process import BandProcess

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="bleak's BlueZ backend is Linux-only"
)

PAIR_HOLD_MS = 5300
SCENARIO_TIMEOUT_S = 40


def uuid16(value: int) -> str:
    return "%08x-0000-1000-8000-00805f9b34fb" % value


class World:
    def __init__(self, air: str, band: BandProcess, control: AirspaceControl, seen_at: str) -> None:
        self.air = air
        self.band = band
        self.control = control
        self.seen_at = seen_at  # where the band advertises (a private address, until it rotates)

    @property
    def address(self) -> str:
        """The band's identity: the airspace's handle on it, never on the air."""
        return self.band.address


@contextlib.asynccontextmanager
async def world(tmp: Path, *bluez_args: str) -> AsyncIterator[World]:
    server = Airspace()
    air = await server.start()
    band = BandProcess(air, tmp / "band")
    try:
        await band.start()
        async with AirspaceControl(air) as control, simulated_bluez(air, *bluez_args):
            yield World(air, band, control, await control.wait_advertising(band.address))
    finally:
        await band.kill()
        await server.close()


def run(scenario: Callable[[World], Awaitable[None]], tmp: Path, *bluez_args: str) -> None:
    async def main() -> None:
        async with world(tmp, *bluez_args) as w:
            await asyncio.wait_for(scenario(w), SCENARIO_TIMEOUT_S)

    asyncio.run(main())


def test_bleak_discovers_the_band_and_reads_its_gatt_through_bluez(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        found = await BleakScanner.discover(
            timeout=1.5, service_uuids=[gatt.HUG_SERVICE_UUID], return_adv=True
        )
        assert w.seen_at in found, f"band not discovered: {list(found)}"
        device, adv = found[w.seen_at]
        assert adv.local_name is None  # no name on the air (BlueZ names it by its address)
        assert -100 <= adv.rssi < 0
        assert 0xFFFF in adv.manufacturer_data
        assert gatt.HUG_SERVICE_UUID in adv.service_uuids
        assert device.details["path"] == "/org/bluez/hci0/dev_" + w.seen_at.replace(":", "_")

        # the discovery filter reaches BlueZ: a scan for another service UUID hears nothing of the band
        # (bleak filters service_uuids itself too, so pass the UUID as a raw BlueZ filter instead)
        other = "0000fe00-0000-1000-8000-00805f9b34fb"
        heard: list[str] = []
        async with BleakScanner(lambda d, _a: heard.append(d.address), bluez={"filters": {"UUIDs": [other]}}):
            await asyncio.sleep(1.2)  # a scan window: nothing to await when nothing may arrive
        assert w.seen_at not in heard

        async with BleakClient(w.seen_at) as client:
            services = client.services
            assert services.get_service(gatt.HUG_SERVICE_UUID) is not None
            battery = services.get_characteristic(uuid16(gatt.BATTERY_LEVEL_UUID))
            assert battery is not None
            assert "read" in battery.properties
            level = await client.read_gatt_char(battery)
            assert len(level) == 1
            assert 0 <= level[0] <= 100
            maker = services.get_characteristic(uuid16(gatt.MANUFACTURER_NAME_UUID))
            assert maker is not None
            assert bytes(await client.read_gatt_char(maker)) == gatt.MANUFACTURER_NAME.encode()
            for uuid in (gatt.EVENT_CHAR_UUID, gatt.STATE_CHAR_UUID):
                char = services.get_characteristic(uuid)
                assert char is not None
                assert "notify" in char.properties
                cccd = char.get_descriptor(uuid16(gatt.CCCD_UUID))
                assert cccd is not None, f"{uuid} has no CCCD"
                assert cccd.handle == char.handle + 1  # charYYYY is the value handle; its CCCD follows
                assert client.services.get_characteristic(char.handle) is char
            command = services.get_characteristic(gatt.COMMAND_CHAR_UUID)
            assert command is not None
            assert "write" in command.properties
            # ATT errors come back the way bluetoothd words them, and bleak turns them into GATT codes
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.write_gatt_char(battery, b"\x64", response=True)
            assert refused.value.code == BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.read_gatt_char(command)
            assert refused.value.code == BleakGATTProtocolErrorCode.READ_NOT_PERMITTED
        assert not client.is_connected

    run(scenario, tmp_path)


def test_connect_to_a_band_out_of_range_times_out_then_works_in_range(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        device = await BleakScanner.find_device_by_address(w.seen_at, timeout=5)
        assert device is not None
        await w.control.out_of_range(w.address)
        with pytest.raises(TimeoutError):
            async with BleakClient(device, timeout=1.0):  # bleak gives up, then cancels with Disconnect
                pass
        await w.control.in_range(w.address)
        # the cancelled Connect must not take the band once it is back (an absence: watch a while)
        await asyncio.sleep(1.0)
        (band,) = [n for n in await w.control.list_nodes() if n["address"] == w.address]
        assert band["connections"] == [], "a cancelled Connect still connected to the band"
        async with BleakClient(device, timeout=5.0) as client:
            level = await client.read_gatt_char(uuid16(gatt.BATTERY_LEVEL_UUID))
            assert len(level) == 1
        assert not client.is_connected

    run(scenario, tmp_path)


def test_declaration_handles_name_characteristics_as_real_bluez_does(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        async with BleakClient(w.seen_at) as client:
            state = client.services.get_characteristic(gatt.STATE_CHAR_UUID)
            assert state is not None
            cccd = state.get_descriptor(uuid16(gatt.CCCD_UUID))
            assert cccd is not None
            assert state.obj[0].endswith("/char%04x" % state.handle)
            assert cccd.handle == state.handle + 2  # declaration, value, CCCD
            notes = await subscribed(client)
            st = await read_state(client, notes, None)  # reads and notifications still reach the value
            assert len(st.nonce) == frames.NONCE_LEN

    run(scenario, tmp_path, "--char-handles", "declaration")


class Notifications:
    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[bytes]] = {}

    def callback(self, uuid: str) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        queue = self.queues.setdefault(uuid, asyncio.Queue())
        return lambda _char, data: queue.put_nowait(bytes(data))

    async def next(self, uuid: str, timeout: float = 5.0) -> bytes:
        return await asyncio.wait_for(self.queues[uuid].get(), timeout)


async def subscribed(client: BleakClient) -> Notifications:
    notes = Notifications()
    for uuid in (gatt.STATE_CHAR_UUID, gatt.EVENT_CHAR_UUID):
        await client.start_notify(uuid, notes.callback(uuid))
    return notes


async def read_state(client: BleakClient, notes: Notifications, key: bytes | None) -> frames.State:
    data = bytes(await client.read_gatt_char(gatt.STATE_CHAR_UUID))
    while not data:  # the band writes a fresh state (with notify) once it has handled the connection
        data = await notes.next(gatt.STATE_CHAR_UUID, 3)
    return frames.decode_state(data, key)


def test_pairing_handshake_link_drop_and_reconnect_through_bluez(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await w.control.hold(w.address, PAIR_HOLD_MS)  # opens the pairing window
        dropped = asyncio.Event()
        client = BleakClient(w.seen_at, disconnected_callback=lambda _c: dropped.set(), timeout=10)
        await client.connect()
        try:
            notes = await subscribed(client)
            state = await read_state(client, notes, None)
            assert state.flags & frames.FLAG_PAIRING_OPEN

            async def write(data: bytes) -> None:
                await client.write_gatt_char(gatt.COMMAND_CHAR_UUID, data, response=True)

            key, session = await pairkit.pair(write, lambda: notes.next(gatt.EVENT_CHAR_UUID), state.nonce)
            rejected: list[str] = []
            while True:
                try:
                    msg = session.open(await notes.next(gatt.EVENT_CHAR_UUID))
                except ProtocolError as exc:
                    rejected.append(repr(exc))
                    continue
                if isinstance(msg, frames.AuthOk):
                    break
            assert rejected == []

            # the link drops in the air: bleak hears of it at once (not after its 10 s timeout)
            assert await w.control.drop_link(w.address) == 1
            await asyncio.wait_for(dropped.wait(), 2)
            assert not client.is_connected
        finally:
            await client.disconnect()

        # the band took a new address with its new key; its owner finds it by its token, connects
        # again, and the band speaks under the key written above
        mine = await find_band(BleConfig(), key, 10)
        assert mine is not None
        assert mine.address != w.seen_at
        async with BleakClient(mine, timeout=10) as again:
            notes = await subscribed(again)
            state = await read_state(again, notes, key)  # raises unless MAC'd under the new key
            assert state.flags & frames.FLAG_PAIRED
            auth, session = frames.phone_session(key, state.nonce, os.urandom(frames.NONCE_LEN))
            await again.write_gatt_char(gatt.COMMAND_CHAR_UUID, auth, response=True)
            while not isinstance(msg := session.open(await notes.next(gatt.EVENT_CHAR_UUID)), frames.AuthOk):
                pass
            assert msg.flags & frames.FLAG_PAIRED

    run(scenario, tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_no_dbus_daemon_outlives_the_simulation(sig: int) -> None:
    async def main() -> None:
        server = Airspace()
        air = await server.start()
        try:
            sim = await start_bluez(air)
            assert len(sim.daemon_pids) == 1, sim.daemon_pids
            (daemon,) = sim.daemon_pids
            assert pid_alive(daemon)
            bus_dir = re.sub(r"^unix:path=([^,]+)/bus.*$", r"\1", sim.bus_address)
            assert await asyncio.to_thread(os.path.isdir, bus_dir)
            code = await stop_bluez(sim.proc, sig)
            if sig == signal.SIGTERM:
                assert code == 0
                left = await asyncio.to_thread(os.path.exists, bus_dir)
                assert not left, "the private bus's temp dir was left behind"
            # SIGKILL gives no chance to clean up: the daemon ends by its parent-death signal
            for _ in range(100):
                if not pid_alive(daemon):
                    break
                await asyncio.sleep(0.05)  # polling a foreign pid: there is no event to await
            assert not pid_alive(daemon), "dbus-daemon %d outlived python -m hugsim.phone.bluez" % daemon
            shutil.rmtree(bus_dir, ignore_errors=True)  # what SIGKILL left
        finally:
            await server.close()

    asyncio.run(main())
