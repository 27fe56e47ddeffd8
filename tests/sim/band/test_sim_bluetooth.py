"""The sim port's ``bluetooth`` module, used exactly as firmware uses MicroPython's, over the airspace."""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import threading
from contextlib import contextmanager

import pytest
from test_airspace_support import ROOT, WAIT_S, EventLog, airspace_thread, run, wait_advert

from hugsim.airspace import AirspaceCentral, AirspaceControl, PeripheralRadio, wire
from hugsim.band import runtime

BAND = "C0:FF:EE:00:00:07"
_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_GATTS_INDICATE_DONE = 20
_IRQ_MTU_EXCHANGED = 21
_IRQ_CONNECTION_UPDATE = 27


@contextmanager
def oserror(code: int):
    """Expect ``OSError(code)`` exactly as MicroPython raises it (``args == (code,)``)."""
    with pytest.raises(OSError) as e:  # noqa: PT011 - the errno is checked below
        yield
    assert e.value.errno == code
    assert e.value.args == (code,)


def load_bluetooth():
    """A fresh import of port/bluetooth.py, as at every simulated boot."""
    spec = importlib.util.spec_from_file_location(
        "bluetooth", ROOT / "sim" / "hugsim" / "band" / "port" / "bluetooth.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def firmware_thread():
    """Stands in for the band's firmware thread: runs scheduled callbacks (soft IRQs)."""
    saved_radio = runtime.radio
    runtime.scheduler.reset()
    stop = threading.Event()
    ident: dict = {}

    def loop() -> None:
        ident["id"] = threading.get_ident()
        while not stop.is_set():
            runtime.scheduler.wait(0.02)
            runtime.scheduler.run_pending()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield ident
    stop.set()
    thread.join(WAIT_S)
    runtime.scheduler.reset()
    if runtime.radio is not None and runtime.radio is not saved_radio:
        runtime.radio.close()
    runtime.radio = saved_radio


def make_service(bt):
    tx = (bt.UUID("6E400003-B5A3-F393-E0A9-E50E24DCCA9E"), bt.FLAG_READ | bt.FLAG_NOTIFY)
    rx = (bt.UUID("6E400002-B5A3-F393-E0A9-E50E24DCCA9E"), bt.FLAG_WRITE | bt.FLAG_WRITE_NO_RESPONSE)
    return (bt.UUID("6E400001-B5A3-F393-E0A9-E50E24DCCA9E"), (tx, rx))


class Firmware:
    """A peripheral written the way MicroPython's examples write one: the IRQ handler records."""

    def __init__(self, bt, name: bytes = b"Hug") -> None:
        self.bt = bt
        self.ble = bt.BLE()
        self.ble.active(True)
        self.ble.config(gap_name=name)
        self.ble.irq(self._irq)
        ((self.tx, self.rx),) = self.ble.gatts_register_services((make_service(bt),))
        self.ble.gatts_write(self.tx, b"ready")
        self.conns: set[int] = set()
        self.events = EventLog()
        self.kept_addr = None
        self.threads: set[int] = set()

    def advertise(self) -> None:
        self.ble.gap_advertise(100_000, b"\x02\x01\x06\x04\x09Hug", resp_data=b"\x03\xff\x34\x12")

    def _irq(self, event, data):
        self.threads.add(threading.get_ident())
        if event == _IRQ_CENTRAL_CONNECT:
            conn, addr_type, addr = data
            self.conns.add(conn)
            self.kept_addr = addr  # a bug on a real band; the sim makes it visible
            self.events(event, (conn, addr_type, bytes(addr)))
        elif event == _IRQ_CENTRAL_DISCONNECT:
            conn, addr_type, addr = data
            self.conns.discard(conn)
            self.events(event, (conn, addr_type, bytes(addr)))
        elif event == _IRQ_GATTS_WRITE:
            conn, handle = data
            self.events(event, (conn, handle, self.ble.gatts_read(handle)))
        else:
            self.events(event, tuple(data))


def test_uuid_semantics():
    bt = load_bluetooth()
    assert bt.UUID(0x180F) == bt.UUID(0x180F)
    assert bt.UUID(0x180F) != bt.UUID(0x180A)
    assert bytes(bt.UUID(0x180F)) == b"\x0f\x18"
    u = bt.UUID("6E400001-B5A3-F393-E0A9-E50E24DCCA9E")
    assert bytes(u) == bytes.fromhex("6E400001B5A3F393E0A9E50E24DCCA9E")[::-1]
    assert bt.UUID(memoryview(bytes(u))) == u  # as copied out of an IRQ
    assert repr(bt.UUID(0x2A19)) == "UUID(0x2a19)"
    assert repr(u) == "UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e')"
    assert bt.UUID("0000180f-0000-1000-8000-00805f9b34fb") != bt.UUID(0x180F)  # 128-bit stays 128-bit
    assert len({bt.UUID(0x180F), bt.UUID(0x180F)}) == 1
    for bad in ("180F", "zz400001-b5a3-f393-e0a9-e50e24dcca9e", -1, 1 << 32):
        with pytest.raises(ValueError, match="invalid UUID"):
            bt.UUID(bad)
    with pytest.raises(TypeError):
        bt.UUID(1.5)


def test_handles_flags_and_errors_without_radio(firmware_thread):
    runtime.radio = None  # a band in a Faraday cage: the stack works locally
    bt = load_bluetooth()
    ble = bt.BLE()
    assert bt.BLE() is ble
    with oserror(errno.EPERM):
        ble.gatts_write(12, b"x")
    assert ble.active() is False
    assert ble.active(True) is True
    assert (bt.FLAG_READ, bt.FLAG_WRITE_NO_RESPONSE, bt.FLAG_WRITE, bt.FLAG_NOTIFY, bt.FLAG_INDICATE) == (
        2,
        4,
        8,
        16,
        32,
    )
    svc = (
        bt.UUID(0x180F),
        (
            (bt.UUID(0x2A19), bt.FLAG_READ | bt.FLAG_NOTIFY),  # value 12, CCCD 13
            (bt.UUID(0x2A1A), bt.FLAG_WRITE, ((bt.UUID(0x2901), bt.FLAG_READ),)),  # value 15, desc 16
        ),
    )
    other = (bt.UUID(0x180A), ((bt.UUID(0x2A29), bt.FLAG_READ),))  # svc 17, value 19
    assert ble.gatts_register_services((svc, other)) == ((12, 15, 16), (19,))
    assert ble.gatts_read(12) == b""
    ble.gatts_write(12, b"\x64")
    assert ble.gatts_read(12) == b"\x64"
    ble.gatts_set_buffer(15, 4, True)
    with oserror(errno.EINVAL):
        ble.gatts_read(99)
    with oserror(errno.ENOTCONN):
        ble.gatts_notify(0, 12, b"x")
    assert ble.gap_disconnect(0) is False
    assert ble.config("mac") == (0, bytes.fromhex("c0ffee000000"))
    assert ble.config("gap_name") == b"ESP32"
    assert ble.config("mtu") == 256
    ble.config(gap_name="Hug", mtu=185)
    assert ble.config("gap_name") == b"Hug"
    with pytest.raises(ValueError, match="unknown config param"):
        ble.config("nonsense")
    with oserror(errno.EINVAL):
        ble.gap_advertise(100_000, b"x" * 32)
    ble.gap_advertise(100_000, b"\x02\x01\x06")
    with oserror(errno.EBUSY):  # NimBLE: services only change while idle
        ble.gatts_register_services((svc,))
    with oserror(errno.EOPNOTSUPP):
        ble.gap_scan(1000)


def test_firmware_round_trip_over_the_airspace(firmware_thread):
    with airspace_thread() as addr:
        runtime.radio = PeripheralRadio(addr, BAND)
        bt = load_bluetooth()
        fw = Firmware(bt)
        fw.advertise()
        assert fw.ble.config("mac") == (0, wire.address_bytes(BAND))

        async def main():
            central = await AirspaceCentral(addr, name="phone").start()
            adv = await wait_advert(central, BAND)
            assert adv.local_name == "Hug"
            assert adv.manufacturer_data == {0x1234: b""}
            conn = await central.connect(BAND)
            conn_h, addr_type, peer = await fw.events.atake(_IRQ_CENTRAL_CONNECT)
            assert (conn_h, addr_type, peer) == (conn.handle, 0, wire.address_bytes(central.address))
            assert bytes(fw.kept_addr) == bytes(6)  # the IRQ's addr buffer is gone after the handler
            assert fw.threads == {firmware_thread["id"]}  # handlers ran in the firmware thread

            tx = conn.get_characteristic("6e400003-b5a3-f393-e0a9-e50e24dcca9e")
            assert tx.handle == fw.tx
            assert tx.descriptor(0x2902).handle == fw.tx + 1
            assert await conn.read(fw.tx) == b"ready"
            assert await conn.read(3) == b"Hug"  # GAP device name

            await conn.write(fw.rx, b"cmd1", response=True)
            assert await fw.events.atake(_IRQ_GATTS_WRITE) == (conn.handle, fw.rx, b"cmd1")

            got: asyncio.Queue = asyncio.Queue()
            await conn.subscribe(fw.tx, lambda h, d: got.put_nowait(d))
            fw.ble.gatts_notify(conn_h, fw.tx, b"evt")
            assert await asyncio.wait_for(got.get(), WAIT_S) == b"evt"
            fw.ble.gatts_write(fw.tx, b"state2")
            fw.ble.gatts_notify(conn_h, fw.tx)  # data=None: the stored value
            assert await asyncio.wait_for(got.get(), WAIT_S) == b"state2"
            fw.ble.gatts_write(fw.tx, b"state3", True)  # send_update to subscribers
            assert await asyncio.wait_for(got.get(), WAIT_S) == b"state3"
            fw.ble.gatts_indicate(conn_h, fw.tx, b"ind")
            assert await asyncio.wait_for(got.get(), WAIT_S) == b"ind"
            assert await fw.events.atake(_IRQ_GATTS_INDICATE_DONE) == (conn_h, fw.tx, 0)

            await conn.exchange_mtu(517)
            assert await fw.events.atake(_IRQ_MTU_EXCHANGED) == (conn_h, 256)
            await conn.update_connection(30, 0, 4000)
            assert await fw.events.atake(_IRQ_CONNECTION_UPDATE) == (conn_h, 24, 0, 400, 0)

            assert fw.ble.gap_disconnect(conn_h) is True
            assert await conn.wait_disconnected(WAIT_S) == wire.REASON_REMOTE_USER
            assert (await fw.events.atake(_IRQ_CENTRAL_DISCONNECT))[0] == conn_h
            with oserror(errno.ENOTCONN):
                fw.ble.gatts_notify(conn_h, fw.tx, b"late")

            fw.advertise()  # as firmware does after a disconnect
            conn2 = await central.connect(BAND)
            assert conn2.handle == conn_h  # handles are reused
            await fw.events.atake(_IRQ_CENTRAL_CONNECT)
            await central.close()
            assert (await fw.events.atake(_IRQ_CENTRAL_DISCONNECT))[0] == conn2.handle

        run(main())


def test_reboot_drops_links_and_adverts(firmware_thread):
    with airspace_thread() as addr:
        runtime.radio = PeripheralRadio(addr, BAND)
        fw = Firmware(load_bluetooth())
        fw.advertise()

        async def main():
            central = await AirspaceCentral(addr).start()
            ctl = await AirspaceControl(addr).start()
            await wait_advert(central, BAND)
            conn = await central.connect(BAND)
            await fw.events.atake(_IRQ_CENTRAL_CONNECT)

            fresh = Firmware(load_bluetooth())  # reboot: a new import, the same radio
            assert fresh.ble is not fw.ble
            assert await conn.wait_disconnected(WAIT_S) == wire.REASON_SUPERVISION_TIMEOUT
            assert await central.scan(0) == []  # nothing advertised until the firmware says so
            nodes = await ctl.list_nodes()
            assert nodes[0]["connections"] == []
            assert nodes[0]["gap_name"] == "Hug"
            fresh.advertise()
            conn2 = await central.connect(BAND)
            assert await conn2.read(fresh.tx) == b"ready"
            assert (await fresh.events.atake(_IRQ_CENTRAL_CONNECT))[0] == conn2.handle
            assert not any(e == _IRQ_CENTRAL_DISCONNECT for e, _ in fresh.events.all)
            assert [e for e, _ in fw.events.all] == [_IRQ_CENTRAL_CONNECT]  # the old boot hears nothing

            fresh.ble.active(False)  # stack off: the link goes, silently for the firmware
            await conn2.wait_disconnected(WAIT_S)
            await central.close()
            await ctl.close()

        run(main())
