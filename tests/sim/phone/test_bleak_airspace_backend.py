"""bleak, unmodified, over the airspace: the custom backend from hugsim.phone.bleak_backend against virtual
bands running the real firmware. Only bleak's public API is used here (BleakScanner, BleakClient with
``backend=``), as the app does.

Each test starts its own airspace (in this process) and band processes, and its own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

import pairkit
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)

from hugapp.core.bandlink import BleConfig, find_band
from hugproto import frames, gatt, pairing
from hugproto.adv import COMPANY_ID, TOKEN_LEN
from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.process import BandProcess
from hugsim.phone.bleak_backend import airspace_backend, close_airspace_backends, open_radio_count

PAIR_HOLD_MS = 5300
STEP_TIMEOUT = 5.0  # bound on waiting for any single event


class World:
    def __init__(self, air: str, bands: list[BandProcess], control: AirspaceControl) -> None:
        self.air = air
        self.bands = bands
        self.control = control
        self.scanner, self.client = airspace_backend(air, "phone")
        self.on_air: list[str] = []  # where each band advertises (a private address, until it rotates)

    @property
    def address(self) -> str:
        """The first band's identity: the airspace's handle on it, never on the air."""
        return self.bands[0].address

    @property
    def seen_at(self) -> str:
        """Where a phone sees the first band."""
        return self.on_air[0]

    async def advertising(self) -> None:
        """Wait until every band advertises from its first private address; note the addresses."""
        for band in self.bands:
            self.on_air.append(await self.control.wait_advertising(band.address))


@contextlib.asynccontextmanager
async def world(tmp_path: Path, n_bands: int = 1) -> AsyncGenerator[World]:
    server = Airspace()
    air = await server.start()
    bands = [BandProcess(air, tmp_path / f"band{i}") for i in range(n_bands)]
    try:
        await asyncio.gather(*(b.start() for b in bands))
        async with AirspaceControl(air) as control:
            w = World(air, bands, control)
            await w.advertising()
            yield w
    finally:
        await asyncio.gather(*(b.kill() for b in bands))
        await server.close()


def run(scenario: Callable[[World], Awaitable[None]], tmp_path: Path, n_bands: int = 1) -> None:
    async def main() -> None:
        async with world(tmp_path, n_bands) as w:
            await asyncio.wait_for(scenario(w), 60)

    asyncio.run(main())
    # the shared phone radio went away with its event loop: nothing leaks into the next test
    assert open_radio_count() == 0


def char(client: BleakClient, uuid: str | int) -> BleakGATTCharacteristic:
    found = client.services.get_characteristic(gatt.uuid16_str(uuid) if isinstance(uuid, int) else uuid)
    assert found is not None, f"no characteristic {uuid}"
    return found


def test_scan_reports_rssi_state_and_token_but_no_name(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await w.control.set_rssi(w.address, -67, central="phone")
        found = await BleakScanner.discover(
            0.5, backend=w.scanner, service_uuids=[gatt.HUG_SERVICE_UUID], return_adv=True
        )
        assert set(found) == {w.seen_at}
        assert w.seen_at != w.address  # a private address, not the band's own
        device, adv = found[w.seen_at]
        assert adv.local_name is None  # no name on the air
        assert adv.rssi == -67
        assert gatt.HUG_SERVICE_UUID in adv.service_uuids
        state = adv.manufacturer_data[COMPANY_ID]
        assert len(state) == 1 + TOKEN_LEN
        assert state[0] & (frames.FLAG_PAIRED | frames.FLAG_PAIRING_OPEN) == 0  # a new band

        # the service filter is applied: nothing advertises the Battery service
        none = await BleakScanner.discover(
            0.3, backend=w.scanner, service_uuids=[gatt.uuid16_str(0x180F)], return_adv=True
        )
        assert none == {}
        # passive scanning sends no scan request, so no name
        passive = await BleakScanner.discover(
            0.3, backend=w.scanner, return_adv=True, scanning_mode="passive"
        )
        assert passive[w.seen_at][1].local_name is None

        by_addr = await BleakScanner.find_device_by_address(w.seen_at.lower(), 3.0, backend=w.scanner)
        assert by_addr is not None
        assert (by_addr.address, by_addr.name) == (w.seen_at, device.name)
        started = time.monotonic()
        assert await BleakScanner.find_device_by_address("C0:FF:EE:99:99:99", 0.4, backend=w.scanner) is None
        assert time.monotonic() - started < 2.0

        await w.control.out_of_range(w.address, central="phone")
        gone = await BleakScanner.discover(0.3, backend=w.scanner, return_adv=True)
        assert w.seen_at not in gone

    run(scenario, tmp_path)


def test_gatt_notify_errors_and_dropped_link(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        device = await BleakScanner.find_device_by_address(w.seen_at, 3.0, backend=w.scanner)
        assert device is not None
        dropped = asyncio.Event()
        callbacks: list[BleakClient] = []

        def on_disconnect(c: BleakClient) -> None:
            callbacks.append(c)
            dropped.set()

        async with BleakClient(device, on_disconnect, backend=w.client, timeout=5) as client:
            assert client.is_connected
            assert client.name == w.seen_at.replace(":", "-")  # no name on the air: bleak's fallback
            assert client.mtu_size > 23  # negotiated on connect, as phones do
            uuids = {s.uuid for s in client.services}
            assert {gatt.HUG_SERVICE_UUID, gatt.uuid16_str(0x180F), gatt.uuid16_str(0x180A)} <= uuids

            event, command, state = (
                char(client, u) for u in (gatt.EVENT_CHAR_UUID, gatt.COMMAND_CHAR_UUID, gatt.STATE_CHAR_UUID)
            )
            assert {"notify", "read"} <= set(event.properties)
            assert "write" in command.properties
            assert "read" not in command.properties
            assert {"read", "notify"} <= set(state.properties)
            assert state.service_uuid == gatt.HUG_SERVICE_UUID
            cccd = state.get_descriptor(gatt.uuid16_str(gatt.CCCD_UUID))
            assert cccd is not None
            assert cccd.handle != state.handle

            battery = await client.read_gatt_char(gatt.uuid16_str(gatt.BATTERY_LEVEL_UUID))
            assert len(battery) == 1
            assert 0 <= battery[0] <= 100
            maker = await client.read_gatt_char(gatt.uuid16_str(gatt.MANUFACTURER_NAME_UUID))
            assert bytes(maker) == gatt.MANUFACTURER_NAME.encode()
            # the characteristic handle is the value handle: reading by it is the same read
            maker_char = char(client, gatt.MANUFACTURER_NAME_UUID)
            assert await client.read_gatt_char(maker_char) == maker
            assert await client.read_gatt_char(maker_char.handle) == maker

            states: asyncio.Queue[bytes] = asyncio.Queue()
            await client.start_notify(state, lambda _c, data: states.put_nowait(bytes(data)))
            assert await client.read_gatt_descriptor(cccd) == bytearray(b"\x01\x00")
            data = bytes(await client.read_gatt_char(state))
            if not data:  # the band writes its state once it has handled the connection
                data = await asyncio.wait_for(states.get(), STEP_TIMEOUT)
            st = frames.decode_state(data, None)
            assert len(st.nonce) == frames.NONCE_LEN
            assert not st.flags & frames.FLAG_PAIRED

            # a write the band accepts at the GATT level (a key exchange outside the pairing window: ignored)
            await client.write_gatt_char(
                command, pairing.encode_pub(frames.PAIR_PUB, 0, os.urandom(32)), True
            )
            # ATT errors come back as bleak's own
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.write_gatt_char(gatt.uuid16_str(gatt.BATTERY_LEVEL_UUID), b"\x05", True)
            assert refused.value.code == BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED
            with pytest.raises(BleakGATTProtocolError) as unreadable:
                await client.read_gatt_char(command)
            assert unreadable.value.code == BleakGATTProtocolErrorCode.READ_NOT_PERMITTED
            await client.stop_notify(state)
            assert await client.read_gatt_descriptor(cccd) == bytearray(b"\x00\x00")

            # the link drops under the app's feet
            assert await w.control.drop_link(w.address) == 1
            await asyncio.wait_for(dropped.wait(), STEP_TIMEOUT)
            assert callbacks == [client]
            assert not client.is_connected
            with pytest.raises(BleakError):
                await client.read_gatt_char(state)
        assert callbacks == [client], "the disconnected callback runs once per link"

        # connect again by address string; a requested disconnect also reports (as BlueZ does)
        again = BleakClient(w.seen_at, on_disconnect, backend=w.client, timeout=5)
        dropped.clear()
        await again.connect()
        assert again.is_connected
        assert again.name == w.seen_at.replace(":", "-")
        await again.disconnect()
        assert not again.is_connected
        assert dropped.is_set()
        await again.disconnect()  # idempotent

        # out of range: bleak's not-found error within the connect timeout
        await w.control.out_of_range(w.address)
        started = time.monotonic()
        with pytest.raises(BleakDeviceNotFoundError):
            await BleakClient(w.seen_at, backend=w.client, timeout=1.0).connect()
        assert time.monotonic() - started < 3.0

        # a connect the app gives up on while the band is away must not leave the band connected to
        # nobody when it comes back (it would stop advertising for good)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(BleakClient(w.seen_at, backend=w.client, timeout=10).connect(), 0.3)
        await w.control.in_range(w.address, central="phone")  # the airspace completes the connect now
        back = await BleakScanner.find_device_by_address(w.seen_at, 3.0, backend=w.scanner)
        assert back is not None, "the band stayed connected to an abandoned connect"
        async with BleakClient(back, backend=w.client, services=[gatt.HUG_SERVICE_UUID], timeout=5) as last:
            assert [s.uuid for s in last.services] == [gatt.HUG_SERVICE_UUID]  # bleak's services filter
            state = char(last, gatt.STATE_CHAR_UUID)
            assert state.max_write_without_response_size == last.mtu_size - 3

    run(scenario, tmp_path)


async def _state(client: BleakClient, states: asyncio.Queue[bytes]) -> frames.State:
    data = bytes(await client.read_gatt_char(gatt.STATE_CHAR_UUID))
    if not data:
        data = await asyncio.wait_for(states.get(), STEP_TIMEOUT)
    return frames.decode_state(data, None)


def test_two_bands_and_a_scan_on_one_radio(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        a, b = w.on_air
        drops: list[str] = []
        gone = asyncio.Event()

        def on_disconnect(c: BleakClient) -> None:
            drops.append(c.address)
            gone.set()

        heard_a = asyncio.Event()

        def on_advert(d: BLEDevice, _ad: AdvertisementData) -> None:
            if d.address == a:
                heard_a.set()

        async with BleakScanner(on_advert, backend=w.scanner):
            async with (
                BleakClient(a, on_disconnect, backend=w.client, timeout=5) as ca,
                BleakClient(b, on_disconnect, backend=w.client, timeout=5) as cb,
            ):
                assert open_radio_count() == 1, "one phone, one radio"
                queues: dict[str, asyncio.Queue[bytes]] = {a: asyncio.Queue(), b: asyncio.Queue()}
                for c in (ca, cb):
                    q = queues[c.address]
                    await c.start_notify(gatt.STATE_CHAR_UUID, lambda _c, d, q=q: q.put_nowait(bytes(d)))
                sa, sb = await asyncio.gather(_state(ca, queues[a]), _state(cb, queues[b]))
                assert sa.nonce != sb.nonce
                # the scan keeps running beside two links
                heard_a.clear()
                await w.control.drop_link(w.bands[0].address)
                await asyncio.wait_for(gone.wait(), STEP_TIMEOUT)
                assert drops == [a]
                assert not ca.is_connected
                assert cb.is_connected
                assert (
                    await cb.read_gatt_char(gatt.uuid16_str(gatt.MANUFACTURER_NAME_UUID))
                ) == b"Hug Button"
                # the dropped band advertises again and the running scan hears it
                await asyncio.wait_for(heard_a.wait(), STEP_TIMEOUT)
                with pytest.raises(BleakError, match="another BleakClient"):
                    await BleakClient(b, backend=w.client, timeout=1).connect()
            assert sorted(drops) == sorted([a, b])
        await close_airspace_backends()
        assert open_radio_count() == 0

    run(scenario, tmp_path, n_bands=2)


def test_pairing_handshake_through_bleak(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await w.control.hold(w.address, PAIR_HOLD_MS)
        device = None
        async with BleakScanner(backend=w.scanner, service_uuids=[gatt.HUG_SERVICE_UUID]) as scanner:
            async with asyncio.timeout(STEP_TIMEOUT):
                async for d, ad in scanner.advertisement_data():
                    if (
                        d.address == w.seen_at
                        and ad.manufacturer_data[COMPANY_ID][0] & frames.FLAG_PAIRING_OPEN
                    ):
                        device = d
                        break
        assert device is not None, "the advert shows the pairing window"

        async with BleakClient(device, backend=w.client, timeout=5) as client:
            states: asyncio.Queue[bytes] = asyncio.Queue()
            events: asyncio.Queue[bytes] = asyncio.Queue()
            await client.start_notify(gatt.STATE_CHAR_UUID, lambda _c, d: states.put_nowait(bytes(d)))
            await client.start_notify(gatt.EVENT_CHAR_UUID, lambda _c, d: events.put_nowait(bytes(d)))
            st = await _state(client, states)
            assert st.flags & frames.FLAG_PAIRING_OPEN

            async def write(data: bytes) -> None:
                await client.write_gatt_char(gatt.COMMAND_CHAR_UUID, data, True)

            key, session = await pairkit.pair(
                write, lambda: asyncio.wait_for(events.get(), STEP_TIMEOUT), st.nonce
            )
            ok = session.open(await asyncio.wait_for(events.get(), STEP_TIMEOUT))
            assert isinstance(ok, frames.AuthOk)

        # the band now holds the key and moved to a new address: its owner finds it by its token
        mine = await find_band(BleConfig(w.scanner, w.client), key, STEP_TIMEOUT)
        assert mine is not None
        assert mine.address != device.address
        async with BleakClient(mine, backend=w.client, timeout=5) as client:
            states = asyncio.Queue()
            await client.start_notify(gatt.STATE_CHAR_UUID, lambda _c, d: states.put_nowait(bytes(d)))
            data = bytes(await client.read_gatt_char(gatt.STATE_CHAR_UUID)) or await asyncio.wait_for(
                states.get(), STEP_TIMEOUT
            )
            assert frames.decode_state(data, key).flags & frames.FLAG_PAIRED

    run(scenario, tmp_path)


def test_no_radio_and_bad_address() -> None:
    with pytest.raises(ValueError, match="loopback"):
        airspace_backend("192.0.2.1:1883")
    assert airspace_backend("127.0.0.1:9", "x") is airspace_backend("127.0.0.1:9", "x")

    async def main() -> None:
        server = Airspace()
        air = await server.start()
        await server.close()  # the port is free again: nothing listens there
        scanner, client = airspace_backend(air)
        with pytest.raises(BleakBluetoothNotAvailableError):
            await BleakScanner.discover(0.1, backend=scanner)
        with pytest.raises(BleakError):
            await BleakClient("C0:FF:EE:00:00:01", backend=client, timeout=1).connect()

    asyncio.run(main())
    assert open_radio_count() == 0
