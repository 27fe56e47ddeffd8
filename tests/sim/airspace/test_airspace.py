"""The airspace: adverts and RSSI, links, GATT traffic, faults, killed processes, physics."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from test_airspace_support import ROOT, SRC_PATH, WAIT_S, EventLog, airspace_thread, run, wait_advert

from hugsim.airspace import (
    Airspace,
    AirspaceCentral,
    AirspaceControl,
    AirspaceTimeoutError,
    GattError,
    LinkLimitError,
    NotConnectedError,
    NotFoundError,
    PeripheralRadio,
    wire,
)

BAND = "C0:FF:EE:00:00:01"
SVC = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
TX_UUID = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
RX_UUID = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
CCCD = wire.CCCD_UUID
TX, RX = 12, 15  # value handles in the table below
ADV = bytes([2, 1, 6, 5, 9]) + b"Band"
RESP = bytes([3, 0xFF, 0x34, 0x12])

TABLE = [
    {
        "uuid": SVC,
        "handle": 10,
        "end_handle": 15,
        "characteristics": [
            {
                "uuid": TX_UUID,
                "decl_handle": 11,
                "handle": TX,
                "properties": 0x12,  # read | notify
                "descriptors": [{"uuid": CCCD, "handle": 13, "flags": 0x0A}],
            },
            {
                "uuid": RX_UUID,
                "decl_handle": 14,
                "handle": RX,
                "properties": 0x0C,  # write | write-without-response
                "descriptors": [],
            },
        ],
    }
]


async def band(
    addr: str, address: str = BAND, *, advertise: bool = True
) -> tuple[PeripheralRadio, EventLog, EventLog]:
    """A raw band radio with the table above, advertising; returns (radio, events, inputs)."""
    events, inputs = EventLog(), EventLog()
    radio = await asyncio.to_thread(PeripheralRadio, addr, address, on_event=events, on_input=inputs)
    radio.register_gatt(TABLE, {TX: b"hello"})
    if advertise:
        radio.advertise(100_000, ADV, RESP)
    return radio, events, inputs


async def close(*things) -> None:
    for t in things:
        if isinstance(t, PeripheralRadio):
            await asyncio.to_thread(t.close)
        else:
            await t.close()


def test_in_process_server_lifecycle_and_advert_with_rssi():
    async def main():
        async with Airspace() as server:
            assert server.address.startswith("127.0.0.1:")
            radio, _, _ = await band(server.address)
            async with (
                AirspaceCentral(server.address, name="phone") as central,
                AirspaceControl(server.address) as ctl,
            ):
                adv = await wait_advert(central, BAND)
                assert (adv.rssi, adv.adv, adv.resp) == (-55, ADV, RESP)
                assert adv.local_name == "Band"
                assert adv.manufacturer_data == {0x1234: b""}

                passive = await wait_advert(central, BAND, active=False)
                assert passive.resp is None  # a scan response needs an active scan

                await ctl.set_rssi(BAND, -80)
                assert (await wait_advert(central, BAND, lambda a: a.rssi == -80)).rssi == -80
                await ctl.set_rssi(BAND, -101)  # below the floor: gone
                assert await central.scan(0) == []
                await ctl.in_range(BAND)
                assert [a.address for a in await central.scan(0)] == [BAND]
            await close(radio)

    run(main())


def test_per_central_rssi_hides_a_band_from_one_phone_only():
    with airspace_thread() as addr:

        async def main():
            radio, _, _ = await band(addr)
            near = await AirspaceCentral(addr, name="near").start()
            far = await AirspaceCentral(addr, name="far").start()
            ctl = await AirspaceControl(addr).start()
            await wait_advert(near, BAND)
            await ctl.out_of_range(BAND, central="far")
            assert [a.address for a in await near.scan(0)] == [BAND]
            assert await far.scan(0) == []
            with pytest.raises(AirspaceTimeoutError):
                await far.connect(BAND, timeout=0.2)
            await close(near, far, ctl, radio)

        run(main())


def test_connect_read_write_notify_round_trip():
    with airspace_thread() as addr:

        async def main():
            radio, events, _ = await band(addr)
            central = await AirspaceCentral(addr, name="phone").start()
            await wait_advert(central, BAND)
            conn = await central.connect(BAND, timeout=WAIT_S)
            ev = await events.atake("connect")
            assert ev["conn"] == conn.handle == 0
            assert ev["addr"] == wire.address_bytes(central.address)
            assert conn.mtu == 23

            (svc,) = conn.services()
            assert svc.uuid == SVC
            tx = conn.get_characteristic(TX_UUID)
            assert tx.handle == TX
            assert tx.property_names == ["read", "notify"]
            assert tx.descriptor(0x2902).handle == 13

            assert await conn.read(TX) == b"hello"
            await conn.write(RX, b"ping", response=True)
            assert (await events.atake("write")) == {"conn": 0, "handle": RX}
            assert radio.read_value(RX) == b"ping"
            await conn.write(RX, b"x" * 25, response=False)
            await events.atake("write")
            assert radio.read_value(RX) == b"x" * 20  # the 20-byte default buffer truncates

            with pytest.raises(GattError) as err:
                await conn.write(TX, b"no")
            assert err.value.att == wire.ATT_WRITE_NOT_PERMITTED
            with pytest.raises(GattError):
                await conn.read(99)

            got: asyncio.Queue = asyncio.Queue()
            await conn.subscribe(TX, lambda h, data: got.put_nowait((h, data)))
            assert await conn.read(13) == b"\x01\x00"
            assert radio.notify(0, TX, b"evt1")
            assert await asyncio.wait_for(got.get(), WAIT_S) == (TX, b"evt1")
            radio.update(TX, b"upd")  # gatts_write(..., send_update=True): subscribers only
            assert await asyncio.wait_for(got.get(), WAIT_S) == (TX, b"upd")
            radio.notify(0, TX, b"y" * 30)
            assert await asyncio.wait_for(got.get(), WAIT_S) == (TX, b"y" * 20)  # MTU 23 - 3

            assert await conn.exchange_mtu(517) == 256  # the band prefers 256 (MicroPython default)
            assert (await events.atake("mtu"))["mtu"] == 256

            await conn.disconnect()
            ev = await events.atake("disconnect")
            assert ev["reason"] == wire.REASON_REMOTE_USER
            assert not conn.is_connected
            assert 0 not in radio.connections
            with pytest.raises(NotConnectedError):
                await conn.read(TX)
            await close(central, radio)

        run(main())


def test_connect_stops_advertising_and_peripheral_disconnect_reaches_central():
    with airspace_thread() as addr:

        async def main():
            radio, events, _ = await band(addr)
            central = await AirspaceCentral(addr).start()
            await wait_advert(central, BAND)
            conn = await central.connect(BAND)
            await events.atake("connect")
            assert await central.scan(0) == []  # a connection stops connectable advertising
            assert radio.disconnect(conn.handle)
            assert await conn.wait_disconnected(WAIT_S) == wire.REASON_REMOTE_USER
            assert (await events.atake("disconnect"))["reason"] == wire.REASON_LOCAL_HOST
            assert not radio.disconnect(conn.handle)  # gap_disconnect on a dead handle: False
            await close(central, radio)

        run(main())


def test_out_of_range_hides_advert_and_drops_link():
    with airspace_thread() as addr:

        async def main():
            radio, events, _ = await band(addr)
            central = await AirspaceCentral(addr).start()
            ctl = await AirspaceControl(addr).start()
            await wait_advert(central, BAND)
            conn = await central.connect(BAND)
            await events.atake("connect")
            radio.advertise(100_000, ADV, RESP)  # advertising again while connected
            await wait_advert(central, BAND)

            await ctl.out_of_range(BAND)
            assert await conn.wait_disconnected(WAIT_S) == wire.REASON_SUPERVISION_TIMEOUT
            assert (await events.atake("disconnect"))["reason"] == wire.REASON_SUPERVISION_TIMEOUT
            assert await central.scan(0) == []
            with pytest.raises(AirspaceTimeoutError):
                await central.connect(BAND, timeout=0.2)

            # back in range: a pending connect completes as soon as the band is heard
            pending = asyncio.ensure_future(central.connect(BAND, timeout=WAIT_S))
            await ctl.in_range(BAND, -60)
            conn2 = await pending
            assert conn2.is_connected
            assert conn2 is not conn
            await close(central, ctl, radio)

        run(main())


@pytest.mark.parametrize("when", ["before", "after"])
def test_link_drop_in_the_middle_of_a_notification(when):
    with airspace_thread() as addr:

        async def main():
            radio, events, _ = await band(addr)
            central = await AirspaceCentral(addr).start()
            ctl = await AirspaceControl(addr).start()
            await wait_advert(central, BAND)
            conn = await central.connect(BAND)
            await events.atake("connect")
            got: list = []
            await conn.subscribe(TX, lambda h, data: got.append(data))
            await ctl.drop_after(BAND, "notify", n=2, when=when)
            radio.notify(0, TX, b"1")
            radio.notify(0, TX, b"2")
            assert await conn.wait_disconnected(WAIT_S) == wire.REASON_SUPERVISION_TIMEOUT
            assert got == ([b"1"] if when == "before" else [b"1", b"2"])
            assert (await events.atake("disconnect"))["reason"] == wire.REASON_SUPERVISION_TIMEOUT
            await close(central, ctl, radio)

        run(main())


@pytest.mark.parametrize("when", ["before", "after"])
def test_link_drop_in_the_middle_of_a_write(when):
    with airspace_thread() as addr:

        async def main():
            radio, events, _ = await band(addr)
            central = await AirspaceCentral(addr).start()
            ctl = await AirspaceControl(addr).start()
            await wait_advert(central, BAND)
            conn = await central.connect(BAND)
            await events.atake("connect")
            await ctl.drop_after(BAND, "write", n=1, when=when)
            with pytest.raises(NotConnectedError):
                await conn.write(RX, b"ack7", response=True)
            assert not conn.is_connected
            await events.atake("disconnect")
            names = [name for name, _ in events.all]
            if when == "before":  # never arrived
                assert "write" not in names
                assert radio.read_value(RX) == b""
            else:  # arrived and stored; only the response was lost
                assert names.index("write") < names.index("disconnect")
                assert radio.read_value(RX) == b"ack7"
            await close(central, ctl, radio)

        run(main())


def test_indication_is_confirmed():
    with airspace_thread() as addr:

        async def main():
            radio, events, _ = await band(addr)
            central = await AirspaceCentral(addr).start()
            await wait_advert(central, BAND)
            conn = await central.connect(BAND)
            await events.atake("connect")
            got: asyncio.Queue = asyncio.Queue()
            await conn.subscribe(TX, lambda h, d: got.put_nowait(d))
            radio.notify(0, TX, b"ind", indicate=True)
            assert await asyncio.wait_for(got.get(), WAIT_S) == b"ind"
            assert (await events.atake("indicate_done"))["status"] == 0
            await close(central, radio)

        run(main())


def test_latency_delays_delivery():
    with airspace_thread() as addr:

        async def main():
            radio, events, _ = await band(addr)
            central = await AirspaceCentral(addr).start()
            ctl = await AirspaceControl(addr).start()
            await wait_advert(central, BAND)
            conn = await central.connect(BAND)
            await events.atake("connect")
            got: asyncio.Queue = asyncio.Queue()
            await conn.subscribe(TX, lambda h, d: got.put_nowait(time.monotonic()))
            await ctl.set_latency(80)
            sent = time.monotonic()
            radio.notify(0, TX, b"slow")
            arrived = await asyncio.wait_for(got.get(), WAIT_S)
            assert arrived - sent >= 0.08
            await ctl.set_latency(0)
            await close(central, ctl, radio)

        run(main())


def test_press_hold_and_output_timeline():
    with airspace_thread() as addr:

        async def main():
            radio, _, inputs = await band(addr, advertise=False)
            ctl = await AirspaceControl(addr).start()
            await ctl.wait_node(BAND)
            assert [n["address"] for n in await ctl.list_nodes()] == [BAND]

            await ctl.press(BAND)
            assert await inputs.atake("button") == 1
            await ctl.release(BAND)
            assert await inputs.atake("button") == 0
            await ctl.touch(BAND, 42)
            assert await inputs.atake("touch") == 42
            t_press, t_release = await ctl.hold(BAND, 60)
            assert t_release - t_press >= 60
            assert [await inputs.atake("button"), await inputs.atake("button")] == [1, 0]

            start = await ctl.now()
            radio.report_output("motor", 800, 1234)
            radio.report_output("led", (255, 0, 40), 1240)
            radio.report_output("motor", 0, 1500)
            entry = await ctl.wait_output(BAND, "motor", lambda v: v == 0, since_ms=start)
            assert entry.value == 0
            assert entry.t_ms >= start
            timeline = await ctl.timeline(BAND)
            assert [(e.kind, e.value) for e in timeline] == [
                ("motor", 800),
                ("led", (255, 0, 40)),
                ("motor", 0),
            ]
            assert [e.t_ms for e in timeline] == sorted(e.t_ms for e in timeline)

            with pytest.raises(NotFoundError):
                await ctl.press("C0:FF:EE:00:00:09")
            with pytest.raises(AirspaceTimeoutError):
                await ctl.wait_output(BAND, "motor", lambda v: v == 999, timeout=0.1)
            await close(ctl, radio)

        run(main())


def test_same_address_twice_is_refused():
    with airspace_thread() as addr:

        async def main():
            radio, _, _ = await band(addr)
            with pytest.raises(wire.BusyError):
                await asyncio.to_thread(PeripheralRadio, addr, BAND)
            await close(radio)

        run(main())


PERIPHERAL_SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from hugsim.airspace import PeripheralRadio
    from test_airspace import TABLE, ADV, RESP, BAND
    radio = PeripheralRadio(sys.argv[1], BAND)
    radio.register_gatt(TABLE, {12: b"alive"})
    radio.advertise(100000, ADV, RESP)
    print("ready", flush=True)
    threading.Event().wait()
    """
)


def test_killed_band_process_drops_link_and_advert():
    """Airspace and band in their own processes; kill -9 the band."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC_PATH, str(ROOT / "tests" / "sim" / "airspace")]))
    air = subprocess.Popen(
        [sys.executable, "-m", "hugsim.airspace"], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    band_proc = None
    try:
        addr = air.stdout.readline().strip()
        assert addr.startswith("127.0.0.1:")
        band_proc = subprocess.Popen(
            [sys.executable, "-c", PERIPHERAL_SCRIPT, addr],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert band_proc.stdout.readline().strip() == "ready"

        async def main():
            central = await AirspaceCentral(addr).start()
            ctl = await AirspaceControl(addr).start()
            await wait_advert(central, BAND)
            conn = await central.connect(BAND)
            assert await conn.read(TX) == b"alive"
            band_proc.send_signal(signal.SIGKILL)
            assert await conn.wait_disconnected(WAIT_S) == wire.REASON_SUPERVISION_TIMEOUT
            await ctl.wait_node(BAND, up=False)
            assert await central.scan(0) == []
            assert await ctl.list_nodes() == []
            await close(central, ctl)

        run(main())
    finally:
        for p in (band_proc, air):
            if p is not None:
                p.kill()
                p.wait(WAIT_S)
                if p.stdout:
                    p.stdout.close()


def test_airspace_going_away_disconnects_everyone():
    async def main():
        server = Airspace()
        addr = await server.start()
        radio, events, _ = await band(addr)
        central = await AirspaceCentral(addr).start()
        await wait_advert(central, BAND)
        conn = await central.connect(BAND)
        await events.atake("connect")
        await server.close()
        await conn.wait_disconnected(WAIT_S)
        await events.atake("disconnect")
        await events.atake("airspace_lost")
        assert radio.closed
        assert radio.connections == {}
        with pytest.raises(NotConnectedError):
            await central.scan(0)
        await close(central, radio)

    run(main())


PRIVATE = "3A:17:C0:55:02:9E"
LATER = "11:22:33:44:55:66"


def test_a_band_takes_a_new_address_links_keep_theirs():
    async def main():
        async with Airspace() as server:
            radio, _, _ = await band(server.address, advertise=False)
            async with (
                AirspaceCentral(server.address, name="phone") as central,
                AirspaceControl(server.address) as ctl,
            ):
                radio.set_address(PRIVATE)
                radio.advertise(100_000, ADV, RESP)
                adv = await wait_advert(central, PRIVATE)
                assert adv.address == PRIVATE  # the identity address is never on the air
                assert BAND not in {a.address for a in await central.scan(0.2)}
                assert await ctl.air_address(BAND) == PRIVATE  # control still names the band by identity
                with pytest.raises(AirspaceTimeoutError):
                    await central.connect(BAND, timeout=0.2)
                conn = await central.connect(PRIVATE, timeout=WAIT_S)
                radio.set_address(LATER)  # the next adverts' address; the link keeps its own
                await conn.write(RX, b"hi")
                assert conn.is_connected
                (node,) = await ctl.list_nodes()
                assert node["air_address"] == LATER
                assert node["connections"][0]["central"] == "phone"
                await conn.disconnect()
                radio.advertise(100_000, ADV, RESP)
                assert (await wait_advert(central, LATER)).address == LATER
                # the controller refuses a new address while advertising, with an error and no change
                radio.set_address(PRIVATE)
                await asyncio.sleep(0.2)
                assert await ctl.air_address(BAND) == LATER
                # a restarted stack is back on its public address
                radio.reset()
                await asyncio.sleep(0.2)
                assert await ctl.air_address(BAND) == BAND
            await close(radio)

    run(main())


def test_the_recorder_sees_adverts_links_and_gatt_bytes(tmp_path):
    async def main():
        path = tmp_path / "sniffed.jsonl"
        async with Airspace(record_path=str(path)) as server:
            radio, events, _ = await band(server.address, advertise=False)
            radio.set_address(PRIVATE)
            radio.advertise(100_000, ADV, RESP)
            async with (
                AirspaceCentral(server.address, name="phone") as central,
                AirspaceControl(server.address) as ctl,
            ):
                t0 = await ctl.now()
                conn = await central.connect(PRIVATE, timeout=WAIT_S)
                await conn.write(RX, b"\x01\x02")
                assert await conn.read(TX) == b"hello"
                got = asyncio.get_running_loop().create_future()
                await conn.subscribe(TX, lambda _h, v: got.done() or got.set_result(bytes(v)))
                connected = await events.atake("connect")
                radio.notify(connected["conn"], TX, b"\xaa\xbb")
                assert await asyncio.wait_for(got, WAIT_S) == b"\xaa\xbb"
                await conn.disconnect()
                sniffed = await ctl.recording()
                truth = await ctl.recording(truth=True)
            await close(radio)
        kinds = [e["kind"] for e in sniffed]
        for kind in ("adv", "connect", "write", "read", "read_rsp", "notify", "disconnect"):
            assert kind in kinds, kinds
        adv = next(e for e in sniffed if e["kind"] == "adv")
        assert (adv["address"], adv["adv"], adv["resp"]) == (PRIVATE, ADV.hex(), RESP.hex())
        write = next(e for e in sniffed if e["kind"] == "write")
        assert (write["address"], write["central"], write["value"]) == (PRIVATE, central.address, "0102")
        assert next(e for e in sniffed if e["kind"] == "read_rsp")["value"] == b"hello".hex()
        assert next(e for e in sniffed if e["kind"] == "notify")["value"] == "aabb"
        assert all("node" not in e for e in sniffed)  # what a sniffer has: no identities
        assert {e["node"] for e in truth} == {BAND}  # the ground truth, for tests
        assert all(e["t_ms"] >= t0 for e in sniffed if e["kind"] != "adv")
        assert path.read_text().count("\n") == len(truth)  # the same, as JSON lines

    run(main())


def test_a_central_holds_at_most_its_link_limit():
    """Real adapters hold a handful of links (default 7): one more fails at once; freeing a link, or
    another central, connects; the limit is set per central."""
    addresses = ["C0:FF:EE:00:01:%02X" % i for i in range(9)]

    async def main():
        async with Airspace() as server:
            assert server.link_limit == wire.DEFAULT_LINK_LIMIT == 7
            radios = [(await band(server.address, a))[0] for a in addresses]
            async with (
                AirspaceCentral(server.address, name="hub") as hub,
                AirspaceCentral(server.address, name="phone") as phone,
                AirspaceControl(server.address) as ctl,
            ):
                for a in addresses:
                    await wait_advert(hub, a)
                conns = [await hub.connect(a) for a in addresses[:7]]
                with pytest.raises(LinkLimitError):
                    await hub.connect(addresses[7], timeout=WAIT_S)
                assert (await phone.connect(addresses[7])).is_connected  # another radio, its own limit
                await conns[0].disconnect()
                await conns[0].wait_disconnected(WAIT_S)
                assert (await hub.connect(addresses[8])).is_connected

                await ctl.set_link_limit(1, central="phone")  # it holds one already
                with pytest.raises(LinkLimitError):
                    await phone.connect(addresses[0], timeout=WAIT_S)
            await close(*radios)

    run(main())
