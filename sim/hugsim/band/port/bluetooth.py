"""Sim port of MicroPython's ``bluetooth`` module (peripheral role, NimBLE on ESP32 behaviour).

https://docs.micropython.org/en/latest/library/bluetooth.html. The radio is ``hugsim.band.runtime.radio``
(a ``hugsim.airspace.PeripheralRadio`` set by the band runner); with no radio the stack works
locally and nothing reaches the air (a band in a Faraday cage).

Behaviour kept from MicroPython/NimBLE, because firmware can depend on it:

* IRQ events go into a bounded ring buffer (``config(rxbuf=...)``, 128 bytes by default, sized per
  event like MicroPython's) and are delivered by one scheduled callback (``micropython.schedule``
  semantics, via ``runtime.scheduler``): handlers run in the firmware thread, one at a time, in
  order. An event that does not fit is dropped (counted in ``BLE._dropped``).
* ``addr`` in connect/disconnect events is a read-only memoryview into an internal buffer that is
  **zeroed when the handler returns**: keep ``bytes(addr)``, not ``addr``.
* ``gatts_register_services`` returns value handles per service, characteristics and their
  descriptors flattened in definition order; NimBLE's own GAP/GATT services take handles 1..9 and a
  CCCD is added (handle right after the value) for NOTIFY/INDICATE characteristics. It raises
  ``OSError(EBUSY)`` while advertising or connected.
* Attribute values live in a local store (default 20 bytes per attribute, ``gatts_set_buffer`` to
  change; remote writes are truncated to it). Reads by the phone are answered from the store with no
  IRQ (``_IRQ_GATTS_READ_REQUEST`` is STM32-only). CCCD writes raise no IRQ.
* ``gatts_notify``/``gatts_indicate`` send regardless of the client's subscription; an unknown
  ``conn_handle`` raises ``OSError(ENOTCONN)``. Notifications are cut to the link's MTU - 3.
* A connection stops advertising; advertise again after ``_IRQ_CENTRAL_DISCONNECT``.
* Connection handles start at 0 and are reused.
* Methods need ``active(True)`` first (``OSError(EPERM)`` otherwise).

Central-role methods (``gap_scan``, ``gap_connect``, ``gattc_*`` except ``gattc_exchange_mtu``,
pairing, L2CAP) raise ``OSError(EOPNOTSUPP)``: the band never uses them.
"""

import errno
import sys
import threading
import time as _time
from collections import deque

FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_GATTS_INDICATE_DONE = 20
_IRQ_MTU_EXCHANGED = 21
_IRQ_CONNECTION_UPDATE = 27

_FIRST_USER_HANDLE = 10  # NimBLE's GAP (1..5) and GATT (6..9) services come first
_DEFAULT_GAP_NAME = b"ESP32"
_MAX_ADV = 31
_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"
_CCCD = "00002902" + _BASE_SUFFIX
_SCHEDULE_RETRY_S = 2.0

# ring-buffer bytes per event, as MicroPython stores them (event byte + payload)
_COST = {
    _IRQ_CENTRAL_CONNECT: 10,
    _IRQ_CENTRAL_DISCONNECT: 10,
    _IRQ_GATTS_WRITE: 5,
    _IRQ_GATTS_INDICATE_DONE: 6,
    _IRQ_MTU_EXCHANGED: 5,
    _IRQ_CONNECTION_UPDATE: 11,
}


class UUID:
    """A 16-, 32- or 128-bit Bluetooth UUID: ``UUID(0x180F)``, ``UUID('6E400001-B5A3-...')``, or a
    UUID / 2-, 4- or 16-byte little-endian buffer. ``bytes(uuid)`` is little-endian."""

    __slots__ = ("_data",)

    def __init__(self, value) -> None:
        if isinstance(value, UUID):
            self._data = value._data
        elif isinstance(value, int):
            if value < 0 or value > 0xFFFFFFFF:
                raise ValueError("invalid UUID")
            self._data = value.to_bytes(2 if value <= 0xFFFF else 4, "little")
        elif isinstance(value, str):
            digits = value.replace("-", "")
            if len(digits) != 32:
                raise ValueError("invalid UUID")
            try:
                self._data = bytes.fromhex(digits)[::-1]
            except ValueError:
                raise ValueError("invalid UUID") from None
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if len(data) not in (2, 4, 16):
                raise ValueError("invalid UUID")
            self._data = data
        else:
            raise TypeError("invalid UUID")

    def __eq__(self, other) -> bool:
        return isinstance(other, UUID) and self._data == other._data

    def __ne__(self, other) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self._data)

    def __bytes__(self) -> bytes:
        return self._data

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        if len(self._data) == 2:
            return "UUID(0x%04x)" % int.from_bytes(self._data, "little")
        if len(self._data) == 4:
            return "UUID(0x%08x)" % int.from_bytes(self._data, "little")
        return "UUID('%s')" % self._text()

    __str__ = __repr__

    def _text(self) -> str:
        """Canonical 128-bit lower-case text (what the airspace and centrals use)."""
        if len(self._data) < 16:
            return "%08x%s" % (int.from_bytes(self._data, "little"), _BASE_SUFFIX)
        h = self._data[::-1].hex()
        return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


class _NullRadio:
    """No airspace: the stack works, nothing is heard."""

    def __init__(self) -> None:
        self.address = "C0:FF:EE:00:00:00"
        self.addr_bytes = bytes.fromhex("c0ffee000000")
        self.connections = {}
        self.on_event = None
        self._store = {}

    def reset(self) -> None:
        self.on_event = None
        self._store.clear()

    def advertise(self, *args, **kwargs) -> None:
        pass

    def register_gatt(self, services, values=None) -> None:
        self._store = {}
        for svc in services:
            for ch in svc["characteristics"]:
                self._store[ch["handle"]] = [b"", 20, False]
                for d in ch["descriptors"]:
                    if d["uuid"] != _CCCD:
                        self._store[d["handle"]] = [b"", 20, False]

    def set_gap_name(self, name) -> None:
        pass

    def set_mtu_pref(self, mtu) -> None:
        pass

    def has_value(self, handle) -> bool:
        return handle in self._store

    def read_value(self, handle, *, consume=False) -> bytes:
        entry = self._store[handle]
        data = entry[0]
        if consume and entry[2]:
            entry[0] = b""
        return data

    def write_value(self, handle, data) -> None:
        entry = self._store[handle]
        entry[0] = bytes(data)
        entry[1] = max(entry[1], len(entry[0]))

    def set_buffer(self, handle, length, append=False) -> None:
        entry = self._store[handle]
        entry[1] = int(length)
        entry[2] = bool(append)
        entry[0] = entry[0][: entry[1]]

    def notify(self, conn, handle, data=None, indicate=False) -> bool:
        return False

    def update(self, handle, value) -> None:
        pass

    def disconnect(self, conn) -> bool:
        return False

    def exchange_mtu(self, conn) -> bool:
        return False


def _runtime():
    from hugsim.band import runtime

    return runtime


def _oserror(code: int) -> OSError:
    """``OSError(code)`` as MicroPython raises it: ``args == (code,)`` and ``.errno == code``."""
    exc = OSError(code)
    exc.errno = code
    return exc


def _not_active() -> OSError:
    return _oserror(errno.EPERM)


class BLE:
    """The singleton BLE object: ``BLE()`` always returns the same instance (per boot)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            inst = object.__new__(cls)
            inst._setup()
            cls._instance = inst
        return cls._instance

    def __init__(self) -> None:
        pass

    def _setup(self) -> None:
        self._active = False
        self._radio = None
        self._irq = None
        self._config = {
            "gap_name": _DEFAULT_GAP_NAME,
            "mtu": 256,
            "rxbuf": 128,
            "addr_mode": 0,
            "bond": False,
            "mitm": False,
            "io": 3,
            "le_secure": False,
        }
        self._adv = b""
        self._resp = b""
        self._advertising = False
        self._handles = set()
        self._ring = deque()
        self._ring_bytes = 0
        self._ring_lock = threading.Lock()
        self._scheduled = False
        self._dropped = 0

    # ----- state -----

    def active(self, active=None, /):
        if active is None:
            return self._active
        if active and not self._active:
            radio = _runtime().radio
            self._radio = radio if radio is not None else _NullRadio()
            self._radio.reset()  # a fresh stack: nothing survives from a previous boot
            self._radio.on_event = self._on_radio_event
            self._active = True
            self._advertising = False
            self._handles = set()
            self._radio.set_gap_name(self._config["gap_name"])
            self._radio.set_mtu_pref(self._config["mtu"])
        elif not active and self._active:
            self._active = False
            self._advertising = False
            self._handles = set()
            self._radio.reset()
            self._radio.on_event = self._on_radio_event
            with self._ring_lock:
                self._ring.clear()
                self._ring_bytes = 0
        return self._active

    def _need_active(self):
        if not self._active:
            raise _not_active()
        return self._radio

    def config(self, *args, **kwargs):
        if args:
            if len(args) != 1 or kwargs:
                raise TypeError("must query one param")
            name = args[0]
            if name == "mac":
                radio = self._need_active()
                return (0, bytes(radio.addr_bytes))
            if name not in self._config:
                raise ValueError("unknown config param")
            return self._config[name]
        for name, value in kwargs.items():
            if name not in self._config:
                raise ValueError("unknown config param")
            if name == "gap_name":
                value = value.encode() if isinstance(value, str) else bytes(value)
                if self._active:
                    self._radio.set_gap_name(value)
            elif name == "mtu":
                value = int(value)
                if not 23 <= value <= 517:
                    raise _oserror(errno.EINVAL)
                if self._active:
                    self._radio.set_mtu_pref(value)
            elif name in ("rxbuf", "addr_mode", "io"):
                value = int(value)
            else:
                value = bool(value)
            self._config[name] = value
        return None

    def irq(self, handler, /):
        self._irq = handler
        return None

    # ----- GAP -----

    def gap_advertise(self, interval_us, adv_data=None, /, *, resp_data=None, connectable=True):
        radio = self._need_active()
        if interval_us is None:
            self._advertising = False
            radio.advertise(None, self._adv, self._resp, connectable)
            return None
        if adv_data is not None:
            adv = bytes(adv_data)
            if len(adv) > _MAX_ADV:
                raise _oserror(errno.EINVAL)
            self._adv = adv
        if resp_data is not None:
            resp = bytes(resp_data)
            if len(resp) > _MAX_ADV:
                raise _oserror(errno.EINVAL)
            self._resp = resp
        interval = (int(interval_us) // 625) * 625
        self._advertising = True
        radio.advertise(interval, self._adv, self._resp, bool(connectable))
        return None

    def gap_disconnect(self, conn_handle, /):
        return bool(self._need_active().disconnect(int(conn_handle)))

    # ----- GATT server -----

    def gatts_register_services(self, services_definition, /):
        radio = self._need_active()
        if radio.connections or self._advertising_now():
            raise _oserror(errno.EBUSY)
        handle = _FIRST_USER_HANDLE
        table = []
        result = []
        for service in services_definition:
            svc_uuid, characteristics = service
            if not isinstance(svc_uuid, UUID):
                raise TypeError("invalid UUID")
            svc = {"uuid": svc_uuid._text(), "handle": handle, "characteristics": []}
            handle += 1
            handles = []
            for char in characteristics:
                if len(char) not in (2, 3):
                    raise ValueError("invalid characteristic tuple")
                ch_uuid, flags = char[0], int(char[1])
                descriptors = char[2] if len(char) == 3 else ()
                if not isinstance(ch_uuid, UUID):
                    raise TypeError("invalid UUID")
                ch = {
                    "uuid": ch_uuid._text(),
                    "decl_handle": handle,
                    "handle": handle + 1,
                    "properties": flags & 0x7F,
                    "flags": flags,
                    "descriptors": [],
                }
                handles.append(handle + 1)
                handle += 2
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    ch["descriptors"].append(
                        {"uuid": _CCCD, "handle": handle, "flags": FLAG_READ | FLAG_WRITE}
                    )
                    handle += 1
                for desc in descriptors:
                    d_uuid, d_flags = desc
                    if not isinstance(d_uuid, UUID):
                        raise TypeError("invalid UUID")
                    ch["descriptors"].append(
                        {"uuid": d_uuid._text(), "handle": handle, "flags": int(d_flags)}
                    )
                    handles.append(handle)
                    handle += 1
                svc["characteristics"].append(ch)
            svc["end_handle"] = handle - 1
            table.append(svc)
            result.append(tuple(handles))
        self._handles = {h for hs in result for h in hs}
        radio.register_gatt(table)
        return tuple(result)

    def _advertising_now(self) -> bool:
        return self._advertising and not self._radio.connections

    def _check_handle(self, value_handle):
        radio = self._need_active()
        value_handle = int(value_handle)
        if not radio.has_value(value_handle):
            raise _oserror(errno.EINVAL)
        return radio, value_handle

    def gatts_read(self, value_handle, /):
        radio, value_handle = self._check_handle(value_handle)
        return radio.read_value(value_handle, consume=True)

    def gatts_write(self, value_handle, data, send_update=False, /):
        radio, value_handle = self._check_handle(value_handle)
        value = bytes(data)
        radio.write_value(value_handle, value)
        if send_update:
            radio.update(value_handle, value)
        return None

    def gatts_notify(self, conn_handle, value_handle, data=None, /):
        self._send(conn_handle, value_handle, data, False)

    def gatts_indicate(self, conn_handle, value_handle, data=None, /):
        self._send(conn_handle, value_handle, data, True)

    def _send(self, conn_handle, value_handle, data, indicate):
        radio = self._need_active()
        conn_handle = int(conn_handle)
        value_handle = int(value_handle)
        if conn_handle not in radio.connections:
            raise _oserror(errno.ENOTCONN)
        if data is None and not radio.has_value(value_handle):
            raise _oserror(errno.ENOENT)
        if not radio.notify(conn_handle, value_handle, None if data is None else bytes(data), indicate):
            raise _oserror(errno.ENOTCONN)
        return None

    def gatts_set_buffer(self, value_handle, len, append=False, /):
        radio, value_handle = self._check_handle(value_handle)
        radio.set_buffer(value_handle, int(len), bool(append))
        return None

    def gattc_exchange_mtu(self, conn_handle, /):
        if not self._need_active().exchange_mtu(int(conn_handle)):
            raise _oserror(errno.ENOTCONN)
        return None

    # ----- not simulated (central role, pairing, L2CAP) -----

    def _unsupported(self, *args, **kwargs):
        raise _oserror(errno.EOPNOTSUPP)

    gap_scan = gap_connect = gap_pair = gap_passkey = _unsupported
    gattc_discover_services = gattc_discover_characteristics = gattc_discover_descriptors = _unsupported
    gattc_read = gattc_write = _unsupported
    l2cap_listen = l2cap_connect = l2cap_disconnect = l2cap_send = l2cap_recvinto = _unsupported

    # ----- IRQ delivery -----

    def _on_radio_event(self, name, data):
        """Called in the radio's dispatcher thread: store the event, schedule the IRQ handler."""
        addr_buf = None
        if name == "connect" or name == "disconnect":
            if name == "connect":
                self._advertising = False  # a connection stops advertising
            event = _IRQ_CENTRAL_CONNECT if name == "connect" else _IRQ_CENTRAL_DISCONNECT
            addr_buf = bytearray(data["addr"])
            args = (data["conn"], data["addr_type"], memoryview(addr_buf).toreadonly())
        elif name == "write":
            event, args = _IRQ_GATTS_WRITE, (data["conn"], data["handle"])
        elif name == "indicate_done":
            event, args = _IRQ_GATTS_INDICATE_DONE, (data["conn"], data["handle"], data["status"])
        elif name == "mtu":
            event, args = _IRQ_MTU_EXCHANGED, (data["conn"], data["mtu"])
        elif name == "conn_update":
            event = _IRQ_CONNECTION_UPDATE
            args = (data["conn"], data["interval"], data["latency"], data["timeout"], data["status"])
        else:
            return
        cost = _COST[event]
        with self._ring_lock:
            if not self._active or self._ring_bytes + cost > self._config["rxbuf"]:
                if self._active:
                    self._dropped += 1
                    print("bluetooth: IRQ ring buffer full, event %d dropped" % event, file=sys.stderr)
                return
            self._ring.append((event, args, addr_buf, cost))
            self._ring_bytes += cost
            if self._scheduled:
                return
            self._scheduled = True
        scheduler = _runtime().scheduler
        deadline = _time.monotonic() + _SCHEDULE_RETRY_S
        while not scheduler.schedule(self._drain, None):
            if _time.monotonic() > deadline:
                with self._ring_lock:
                    self._scheduled = False
                print("bluetooth: micropython.schedule queue stayed full; IRQs delayed", file=sys.stderr)
                return
            _time.sleep(0.001)

    def _drain(self, _arg):
        """Runs in the firmware thread (a scheduled callback): deliver every queued event."""
        try:
            while True:
                with self._ring_lock:
                    if not self._ring:
                        self._scheduled = False
                        return
                    event, args, addr_buf, cost = self._ring.popleft()
                    self._ring_bytes -= cost
                handler = self._irq
                if handler is None or not self._active:
                    continue
                try:
                    handler(event, args)
                except Exception as exc:  # noqa: BLE001 - printed; the stack carries on (mp_call_function_2_protected)
                    print("Uncaught exception in IRQ callback handler", file=sys.stderr)
                    if hasattr(sys, "print_exception"):
                        sys.print_exception(exc)
                    else:
                        print(repr(exc), file=sys.stderr)
                finally:
                    if addr_buf is not None:
                        addr_buf[:] = bytes(len(addr_buf))
        except BaseException:
            with self._ring_lock:
                self._scheduled = False
            raise
