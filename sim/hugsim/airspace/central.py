"""Central-side airspace client (asyncio): what a phone's BLE stack does, for the app's bleak
backend and for tests.

    async with AirspaceCentral(addr, name="child-phone") as central:
        adverts = await central.scan(0.2)
        conn = await central.connect("C0:FF:EE:00:00:01", timeout=5)
        ch = conn.get_characteristic(HUG_EVENT_UUID)
        await conn.subscribe(ch.handle, lambda handle, data: ...)
        await conn.write(other.handle, b"...", response=True)

Callbacks (scan, notification, disconnect) run on the event loop in arrival order; a coroutine
function is run as a task. Errors: ``AirspaceError`` and its subclasses from ``wire``.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import wire
from ._client import DEFAULT_TIMEOUT, _AsyncSession, call_soon

NotifyCallback = Callable[[int, bytes], Any]  # (value handle, data); may be a coroutine function
DisconnectCallback = Callable[["Connection"], Any]
AdvertCallback = Callable[["Advert"], Any]

PROPERTY_NAMES = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
)


def parse_ad(data: bytes) -> list[tuple[int, bytes]]:
    """Split advertising data into (AD type, payload) pairs; stops at a malformed length."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        n = data[i]
        if n == 0 or i + 1 + n > len(data):
            break
        out.append((data[i + 1], bytes(data[i + 2 : i + 1 + n])))
        i += 1 + n
    return out


def _uuid_from_le(b: bytes) -> str:
    if len(b) in (2, 4):
        return wire.uuid_str(int.from_bytes(b, "little"))
    h = b[::-1].hex()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


@dataclass(frozen=True)
class Advert:
    """One advertising report (the latest one heard from ``address``)."""

    address: str
    rssi: int
    adv: bytes
    resp: bytes | None
    connectable: bool = True
    addr_type: int = 0

    def _fields(self) -> list[tuple[int, bytes]]:
        return parse_ad(self.adv) + parse_ad(self.resp or b"")

    @property
    def local_name(self) -> str | None:
        name = None
        for t, v in self._fields():
            if t == 0x09:
                return v.decode("utf-8", "replace")
            if t == 0x08:
                name = v.decode("utf-8", "replace")
        return name

    @property
    def service_uuids(self) -> list[str]:
        out: list[str] = []
        for t, v in self._fields():
            size = {0x02: 2, 0x03: 2, 0x04: 4, 0x05: 4, 0x06: 16, 0x07: 16}.get(t)
            if size:
                out += [_uuid_from_le(v[i : i + size]) for i in range(0, len(v) - size + 1, size)]
        return out

    @property
    def manufacturer_data(self) -> dict[int, bytes]:
        return {
            int.from_bytes(v[:2], "little"): v[2:] for t, v in self._fields() if t == 0xFF and len(v) >= 2
        }

    @property
    def service_data(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for t, v in self._fields():
            size = {0x16: 2, 0x20: 4, 0x21: 16}.get(t)
            if size and len(v) >= size:
                out[_uuid_from_le(v[:size])] = v[size:]
        return out

    @property
    def tx_power(self) -> int | None:
        for t, v in self._fields():
            if t == 0x0A and v:
                return int.from_bytes(v[:1], "little", signed=True)
        return None


@dataclass(frozen=True)
class Descriptor:
    uuid: str
    handle: int


@dataclass(frozen=True)
class Characteristic:
    uuid: str
    handle: int  # the value handle (what read/write/subscribe take)
    decl_handle: int
    properties: int  # GATT property bits (same values as MicroPython's FLAG_*)
    descriptors: tuple[Descriptor, ...]
    service_uuid: str

    @property
    def property_names(self) -> list[str]:
        return [name for bit, name in PROPERTY_NAMES if self.properties & bit]

    def descriptor(self, uuid: int | str) -> Descriptor | None:
        u = wire.uuid_str(uuid)
        return next((d for d in self.descriptors if d.uuid == u), None)


@dataclass(frozen=True)
class Service:
    uuid: str
    handle: int
    end_handle: int
    characteristics: tuple[Characteristic, ...] = field(default=())


def _services_from_wire(services: list[dict[str, Any]]) -> list[Service]:
    out: list[Service] = []
    for s in services:
        chars = tuple(
            Characteristic(
                uuid=c["uuid"],
                handle=c["handle"],
                decl_handle=c["decl_handle"],
                properties=c["properties"],
                descriptors=tuple(Descriptor(d["uuid"], d["handle"]) for d in c["descriptors"]),
                service_uuid=s["uuid"],
            )
            for c in s["characteristics"]
        )
        out.append(Service(s["uuid"], s["handle"], s["end_handle"], chars))
    return out


class Connection:
    """A link from this central to one peripheral. Created by ``AirspaceCentral.connect``."""

    def __init__(
        self,
        central: "AirspaceCentral",
        info: dict[str, Any],
        disconnected_callback: DisconnectCallback | None = None,
    ) -> None:
        self.central = central
        self.address: str = info["address"]
        self.handle: int = info["conn"]
        self.mtu: int = info["mtu"]
        self._services = _services_from_wire(info["services"])
        self.disconnected = asyncio.Event()
        self.disconnect_reason: int | None = None
        self.disconnected_callback = disconnected_callback
        self._subs: dict[int, NotifyCallback] = {}
        self.unsolicited = 0  # notifications that arrived with no subscriber (dropped, as a stack would)
        self.timeout = DEFAULT_TIMEOUT

    @property
    def is_connected(self) -> bool:
        return not self.disconnected.is_set()

    def services(self) -> list[Service]:
        return list(self._services)

    def get_characteristic(self, key: int | str) -> Characteristic | None:
        """By value handle (int) or UUID (str / 16-bit int given as str like '2a19' or full)."""
        for s in self._services:
            for c in s.characteristics:
                if (isinstance(key, int) and c.handle == key) or (
                    not isinstance(key, int) and c.uuid == wire.uuid_str(key)
                ):
                    return c
        return None

    def _check(self) -> None:
        if self.disconnected.is_set():
            raise wire.NotConnectedError("not connected to %s" % self.address)

    async def read(self, handle: int) -> bytes:
        self._check()
        reply = await self.central._request(
            {"op": "read", "address": self.address, "handle": handle}, self.timeout
        )
        return bytes.fromhex(reply["value"])

    async def write(self, handle: int, data: bytes | bytearray | memoryview, response: bool = True) -> None:
        self._check()
        msg = {
            "op": "write",
            "address": self.address,
            "handle": handle,
            "value": wire.hexb(data),
            "response": response,
        }
        await self.central._request(msg, self.timeout)

    async def subscribe(self, handle: int, callback: NotifyCallback, *, indicate: bool | None = None) -> None:
        """Register ``callback(handle, data: bytes)`` and enable the characteristic's CCCD.

        ``indicate`` None picks notify if the characteristic supports it, else indicate.
        """
        self._check()
        ch = self.get_characteristic(handle)
        if ch is None:
            raise wire.NotFoundError("no characteristic with value handle %d" % handle)
        cccd = ch.descriptor(0x2902)
        if cccd is None:
            raise wire.GattError(
                "characteristic %s has no CCCD (cannot notify)" % ch.uuid, wire.ATT_WRITE_NOT_PERMITTED
            )
        if indicate is None:
            indicate = not ch.properties & 0x10
        self._subs[handle] = callback
        try:
            await self.write(cccd.handle, b"\x02\x00" if indicate else b"\x01\x00", response=True)
        except BaseException:
            self._subs.pop(handle, None)
            raise

    async def unsubscribe(self, handle: int) -> None:
        ch = self.get_characteristic(handle)
        cccd = ch.descriptor(0x2902) if ch else None
        if cccd is None:
            raise wire.NotFoundError("no subscribable characteristic with value handle %d" % handle)
        self._subs.pop(handle, None)
        await self.write(cccd.handle, b"\x00\x00", response=True)

    async def exchange_mtu(self, mtu: int = 517) -> int:
        self._check()
        reply = await self.central._request(
            {"op": "exchange_mtu", "address": self.address, "mtu": mtu}, self.timeout
        )
        self.mtu = reply["mtu"]
        return self.mtu

    async def update_connection(self, interval_ms: float, latency: int = 0, timeout_ms: float = 5000) -> None:
        """The central changes connection parameters (the band sees _IRQ_CONNECTION_UPDATE)."""
        self._check()
        msg = {
            "op": "conn_update",
            "address": self.address,
            "interval_ms": interval_ms,
            "latency": latency,
            "timeout_ms": timeout_ms,
        }
        await self.central._request(msg, self.timeout)

    async def disconnect(self) -> None:
        if self.disconnected.is_set():
            return
        try:
            await self.central._request({"op": "disconnect", "address": self.address}, self.timeout)
        except wire.NotConnectedError:
            self._mark_disconnected(wire.REASON_SUPERVISION_TIMEOUT)

    async def wait_disconnected(self, timeout: float | None = None) -> int | None:
        try:
            await asyncio.wait_for(self.disconnected.wait(), timeout)
        except TimeoutError:
            raise wire.AirspaceTimeoutError(
                "%s still connected after %s s" % (self.address, timeout)
            ) from None
        return self.disconnect_reason

    def _on_notify(self, handle: int, value: bytes) -> None:
        cb = self._subs.get(handle)
        if cb is None:
            self.unsolicited += 1
            return
        call_soon(cb, handle, value)

    def _mark_disconnected(self, reason: int) -> None:
        if self.disconnected.is_set():
            return
        self.disconnect_reason = reason
        self.disconnected.set()
        if self.central._conns.get(self.address) is self:
            del self.central._conns[self.address]
        if self.disconnected_callback is not None:
            call_soon(self.disconnected_callback, self)

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()


class AirspaceCentral(_AsyncSession):
    """A phone's radio on the airspace. ``name`` identifies it for per-phone RSSI and faults."""

    def __init__(self, airspace_addr: str, *, name: str | None = None, address: str | None = None) -> None:
        super().__init__(airspace_addr)
        self.name = name
        self.address = address
        self._conns: dict[str, Connection] = {}
        self._scan_callback: AdvertCallback | None = None

    async def start(self) -> "AirspaceCentral":
        reply = await self._open({"role": "central", "name": self.name, "address": self.address})
        self.address = reply["address"]
        self.name = reply["name"]
        return self

    async def __aenter__(self) -> "AirspaceCentral":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connections(self) -> dict[str, Connection]:
        return dict(self._conns)

    # ----- scanning -----

    async def start_scan(self, callback: AdvertCallback, *, active: bool = True) -> None:
        """Report every advert to ``callback(Advert)``. Adverts already on the air are reported
        before this returns; then changes at once and repeats at the advertising interval
        (clamped to 0.1..1 s)."""
        self._scan_callback = callback
        try:
            await self._request({"op": "scan_start", "active": active})
        except BaseException:
            self._scan_callback = None
            raise

    async def stop_scan(self) -> None:
        self._scan_callback = None
        if not self.closed:
            await self._request({"op": "scan_stop"})

    async def scan(self, duration: float = 0.0, *, active: bool = True) -> list[Advert]:
        """Scan for ``duration`` seconds (0 = just what is on the air now); latest advert per address."""
        seen: dict[str, Advert] = {}

        def remember(a: Advert) -> None:
            seen[a.address] = a

        await self.start_scan(remember, active=active)
        try:
            if duration > 0:
                await asyncio.sleep(duration)
        finally:
            await self.stop_scan()
        return list(seen.values())

    # ----- connecting -----

    async def connect(
        self, address: str, timeout: float = 10.0, *, disconnected_callback: DisconnectCallback | None = None
    ) -> Connection:
        """Connect once ``address`` advertises connectably in range (waits up to ``timeout``)."""
        address = wire.normalize_address(address)
        existing = self._conns.get(address)
        if existing is not None and existing.is_connected:
            return existing

        def register(reply: dict[str, Any]) -> None:
            self._conns[address] = Connection(self, reply, disconnected_callback)

        await self._request(
            {"op": "connect", "address": address, "timeout_ms": int(timeout * 1000)},
            timeout + DEFAULT_TIMEOUT,
            on_reply=register,
        )
        conn = self._conns.get(address)
        if conn is None:  # dropped again before we resumed: report it as it is
            raise wire.NotConnectedError("link to %s dropped right after connecting" % address)
        return conn

    # ----- events -----

    def _on_event(self, msg: dict[str, Any]) -> None:
        ev = msg.get("ev")
        if ev == "adv":
            cb = self._scan_callback
            if cb is not None:
                advert = Advert(
                    address=msg["address"],
                    rssi=msg["rssi"],
                    adv=bytes.fromhex(msg["adv"]),
                    resp=None if msg.get("resp") is None else bytes.fromhex(msg["resp"]),
                    connectable=msg.get("connectable", True),
                    addr_type=msg.get("addr_type", 0),
                )
                call_soon(cb, advert)
        elif ev == "notify":
            conn = self._conns.get(msg["address"])
            if conn is not None:
                conn._on_notify(msg["handle"], bytes.fromhex(msg["value"]))
        elif ev == "disconnected":
            conn = self._conns.get(msg["address"])
            if conn is not None:
                conn._mark_disconnected(msg.get("reason", wire.REASON_SUPERVISION_TIMEOUT))
        elif ev == "mtu":
            conn = self._conns.get(msg["address"])
            if conn is not None:
                conn.mtu = msg["mtu"]

    def _on_closed(self) -> None:
        for conn in list(self._conns.values()):
            conn._mark_disconnected(wire.REASON_SUPERVISION_TIMEOUT)
