"""``bluetooth`` for a virtual band on the MicroPython unix port: the peripheral role as the ESP32
port (NimBLE) documents it, on the airspace (``simlink``).

https://docs.micropython.org/en/latest/library/bluetooth.html. Kept because firmware can rely on it:

* IRQs arrive as scheduled callbacks (``micropython.schedule``, the real scheduler here), in order,
  one at a time, from a ring of ``config(rxbuf=...)`` bytes (128 by default, sized per event as
  MicroPython stores them); an event that does not fit is dropped.
* ``addr`` in connect/disconnect events is a memoryview into a buffer zeroed when the handler returns.
* ``gatts_register_services``: NimBLE's own services take handles 1..9; a CCCD follows every
  NOTIFY/INDICATE value. EBUSY while advertising or connected.
* Values live in a local store (20 bytes per attribute by default, ``gatts_set_buffer``); reads by
  the phone are answered from it without an IRQ. ``gatts_notify`` sends whether or not the client
  subscribed; an unknown connection raises ``OSError(ENOTCONN)``, a controller out of buffers (the
  airspace's ``notify_busy`` fault) ``OSError(ENOMEM)``.
* A connection stops advertising. Methods need ``active(True)`` (``OSError(EPERM)``).
* Addresses: the stack starts on the public address; ``config(addr_mode=1)`` (static random) and
  ``config(addr_mode=3)`` (non-resolvable private) draw a fresh random address on every call, as
  NimBLE does, and ``config("mac")`` returns the address in use. The controller refuses a new address
  while advertising (``OSError(EBUSY)``; NimBLE would silently keep the old one). Mode 2 (RPA, rotated
  by the controller on its own timer) is not modelled: ``OSError(EOPNOTSUPP)``.

Central-role methods, pairing and L2CAP raise ``OSError(EOPNOTSUPP)``: the band never uses them.
"""

import os

import micropython
import simlink

FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020

_EPERM = 1
_ENOENT = 2
_EINVAL = 22
_EBUSY = 16
_ENOTCONN = 107
_ENOMEM = 12
_EOPNOTSUPP = 95

_FIRST_USER_HANDLE = 10
_BASE = "-0000-1000-8000-00805f9b34fb"
_CCCD = "00002902" + _BASE
_DEFAULT_ATTR = 20
# IRQ number and ring-buffer bytes per event, as MicroPython stores them
_EVENTS = {
    "connect": (1, 10),
    "disconnect": (2, 10),
    "write": (3, 5),
    "indicate_done": (20, 6),
    "mtu": (21, 5),
    "conn_update": (27, 11),
}


class UUID:
    """A 16-, 32- or 128-bit UUID: an int, a 128-bit string or a 2/4/16-byte little-endian buffer."""

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
            self._data = bytes(reversed(bytes.fromhex(digits)))
        else:
            data = bytes(value)
            if len(data) not in (2, 4, 16):
                raise ValueError("invalid UUID")
            self._data = data

    def __eq__(self, other) -> bool:
        return isinstance(other, UUID) and self._data == other._data

    def __hash__(self) -> int:
        return hash(self._data)

    def __bytes__(self) -> bytes:
        return self._data

    def __len__(self) -> int:
        return len(self._data)

    def text(self) -> str:
        """Canonical 128-bit lower-case text, as the airspace names attributes."""
        if len(self._data) < 16:
            return "%08x%s" % (int.from_bytes(self._data, "little"), _BASE)
        h = bytes(reversed(self._data)).hex()
        return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

    def __repr__(self) -> str:
        if len(self._data) == 2:
            return "UUID(0x%04x)" % int.from_bytes(self._data, "little")
        return "UUID('%s')" % self.text()


def _err(code: int) -> OSError:
    return OSError(code)


class BLE:
    """The singleton: ``BLE()`` is always the same object."""

    _instance = None

    def __new__(cls):
        if BLE._instance is None:
            BLE._instance = object.__new__(cls)
            BLE._instance._setup()
        return BLE._instance

    def __init__(self) -> None:
        pass

    def _setup(self) -> None:
        self._active = False
        self._irq = None
        self._config = {"gap_name": b"ESP32", "mtu": 256, "rxbuf": 128}
        self._adv = b""
        self._resp = b""
        self._advertising = False
        self._ring = []
        self._ring_bytes = 0
        self._scheduled = False
        self._drain_ref = self._drain  # a bound method allocates: make it once, not in the IRQ path
        self.dropped = 0

    def active(self, active=None):
        if active is None:
            return self._active
        if active and not self._active:
            simlink.reset()  # a fresh stack: nothing survives from before
            simlink.on_event = self._on_event
            self._active = True
            self._advertising = False
            simlink.send({"op": "gap_name", "name": self._config["gap_name"].hex()})
            simlink.send({"op": "mtu_pref", "mtu": self._config["mtu"]})
        elif not active and self._active:
            self._active = False
            self._advertising = False
            simlink.reset()
            self._ring = []
            self._ring_bytes = 0
        return self._active

    def _need_active(self) -> None:
        if not self._active:
            raise _err(_EPERM)

    def config(self, *args, **kwargs):
        if args:
            name = args[0]
            if name == "mac":
                self._need_active()
                return (simlink.air_type, simlink.air_bytes)
            if name not in self._config:
                raise ValueError("unknown config param")
            return self._config[name]
        for name, value in kwargs.items():
            if name == "gap_name":
                value = value.encode() if isinstance(value, str) else bytes(value)
                if self._active:
                    simlink.send({"op": "gap_name", "name": value.hex()})
            elif name == "mtu":
                if not 23 <= value <= 517:
                    raise _err(_EINVAL)
                if self._active:
                    simlink.send({"op": "mtu_pref", "mtu": value})
            elif name == "addr_mode":
                self._set_addr_mode(value)
                continue
            elif name != "rxbuf":
                raise ValueError("unknown config param")
            self._config[name] = value
        return None

    def _set_addr_mode(self, mode) -> None:
        self._need_active()
        if mode == 2:
            raise _err(_EOPNOTSUPP)
        if mode not in (0, 1, 3):
            raise _err(_EINVAL)
        if self._advertising:
            raise _err(_EBUSY)
        if mode == 0:
            simlink.set_address(simlink.addr_bytes, 0)
            return
        addr = bytearray(os.urandom(6))
        # the two top bits: 11 static random, 00 non-resolvable private (neither all 0s nor all 1s)
        addr[0] = (addr[0] | 0xC0) if mode == 1 else (addr[0] & 0x3F)
        if mode == 3 and addr[0] == 0 and addr[1:] == bytes(5):
            addr[5] = 1
        simlink.set_address(bytes(addr), 1)

    def irq(self, handler) -> None:
        self._irq = handler

    # -- GAP --
    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        self._need_active()
        if interval_us is None:
            self._advertising = False
            simlink.send({"op": "advertise", "interval_us": None, "adv": "", "resp": "", "connectable": True})
            return
        if adv_data is not None:
            if len(adv_data) > 31:
                raise _err(_EINVAL)
            self._adv = bytes(adv_data)
        if resp_data is not None:
            if len(resp_data) > 31:
                raise _err(_EINVAL)
            self._resp = bytes(resp_data)
        self._advertising = True
        simlink.send(
            {
                "op": "advertise",
                "interval_us": interval_us // 625 * 625,
                "adv": self._adv.hex(),
                "resp": self._resp.hex(),
                "connectable": bool(connectable),
            }
        )

    def gap_disconnect(self, conn_handle) -> bool:
        self._need_active()
        if conn_handle not in simlink.connections:
            return False
        simlink.send({"op": "disconnect", "conn": conn_handle})
        return True

    # -- GATT server --
    def gatts_register_services(self, services_definition):
        self._need_active()
        if simlink.connections or self._advertising:
            raise _err(_EBUSY)
        handle = _FIRST_USER_HANDLE
        table = []
        result = []
        simlink.store.clear()
        for svc_uuid, chars in services_definition:
            svc = {"uuid": svc_uuid.text(), "handle": handle, "characteristics": []}
            handle += 1
            handles = []
            for char in chars:
                ch_uuid, flags = char[0], char[1]
                ch = {
                    "uuid": ch_uuid.text(),
                    "decl_handle": handle,
                    "handle": handle + 1,
                    "properties": flags & 0x7F,
                    "flags": flags,
                    "descriptors": [],
                }
                handles.append(handle + 1)
                simlink.store[handle + 1] = [b"", _DEFAULT_ATTR, False]
                handle += 2
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    ch["descriptors"].append(
                        {"uuid": _CCCD, "handle": handle, "flags": FLAG_READ | FLAG_WRITE}
                    )
                    handle += 1
                for d_uuid, d_flags in char[2] if len(char) == 3 else ():
                    ch["descriptors"].append({"uuid": d_uuid.text(), "handle": handle, "flags": d_flags})
                    handles.append(handle)
                    simlink.store[handle] = [b"", _DEFAULT_ATTR, False]
                    handle += 1
                svc["characteristics"].append(ch)
            svc["end_handle"] = handle - 1
            table.append(svc)
            result.append(tuple(handles))
        simlink.send({"op": "gatt", "services": table})
        return tuple(result)

    def _attr(self, handle):
        self._need_active()
        a = simlink.store.get(handle)
        if a is None:
            raise _err(_EINVAL)
        return a

    def gatts_read(self, value_handle) -> bytes:
        a = self._attr(value_handle)
        data = a[0]
        if a[2]:  # append mode: reading consumes
            a[0] = b""
        return data

    def gatts_write(self, value_handle, data, send_update=False) -> None:
        a = self._attr(value_handle)
        a[0] = bytes(data)
        a[1] = max(a[1], len(a[0]))
        if send_update:
            simlink.send({"op": "update", "handle": value_handle, "value": a[0].hex()})

    def gatts_notify(self, conn_handle, value_handle, data=None) -> None:
        self._send(conn_handle, value_handle, data, False)

    def gatts_indicate(self, conn_handle, value_handle, data=None) -> None:
        self._send(conn_handle, value_handle, data, True)

    def _send(self, conn, handle, data, indicate) -> None:
        self._need_active()
        if conn not in simlink.connections:
            raise _err(_ENOTCONN)
        if data is None:
            a = simlink.store.get(handle)
            if a is None:
                raise _err(_ENOENT)
            data = a[0]
        busy = simlink.notify_busy
        for h in (handle, 0):
            if not indicate and busy.get(h):  # no controller buffer (the airspace's notify_busy fault)
                busy[h] -= 1
                raise _err(_ENOMEM)
        msg = {
            "op": "notify",
            "conn": conn,
            "handle": handle,
            "value": bytes(data).hex(),
            "indicate": indicate,
        }
        simlink.send(msg)

    def gatts_set_buffer(self, value_handle, len, append=False) -> None:
        a = self._attr(value_handle)
        a[1] = len
        a[2] = bool(append)
        a[0] = a[0][:len]

    def gattc_exchange_mtu(self, conn_handle) -> None:
        self._need_active()
        if conn_handle not in simlink.connections:
            raise _err(_ENOTCONN)
        simlink.send({"op": "exchange_mtu", "conn": conn_handle})

    def _unsupported(self, *args, **kwargs):
        raise _err(_EOPNOTSUPP)

    gap_scan = gap_connect = gap_pair = gap_passkey = _unsupported
    gattc_discover_services = gattc_discover_characteristics = gattc_discover_descriptors = _unsupported
    gattc_read = gattc_write = _unsupported
    l2cap_listen = l2cap_connect = l2cap_disconnect = l2cap_send = l2cap_recvinto = _unsupported

    # -- IRQ delivery --
    def _on_event(self, name, msg) -> None:
        """From the radio task: queue the event and schedule the handler (as NimBLE's host task)."""
        kind = _EVENTS.get(name)
        if kind is None or not self._active:
            return
        event, cost = kind
        if simlink.lose.get(name):  # a fault injected by the airspace: as if the ring were full
            simlink.lose[name] -= 1
            self.dropped += 1
            print("bluetooth: IRQ ring buffer full, event %d dropped" % event)
            return
        if self._ring_bytes + cost > self._config["rxbuf"]:
            self.dropped += 1
            print("bluetooth: IRQ ring buffer full, event %d dropped" % event)
            return
        self._ring.append((event, msg))
        self._ring_bytes += cost
        if name == "connect":
            self._advertising = False
        if not self._scheduled:
            try:
                micropython.schedule(self._drain_ref, None)
                self._scheduled = True
            except RuntimeError:  # schedule queue full: the next event retries
                pass

    def _drain(self, _arg) -> None:
        self._scheduled = False
        while self._ring:
            event, msg = self._ring.pop(0)
            self._ring_bytes -= _EVENTS_COST[event]
            addr = None
            if event <= 2:
                addr = bytearray(bytes.fromhex(msg["addr"]))
                args = (msg["conn"], msg["addr_type"], memoryview(addr))
            elif event == 3:
                args = (msg["conn"], msg["handle"])
            elif event == 20:
                args = (msg["conn"], msg["handle"], msg["status"])
            elif event == 21:
                args = (msg["conn"], msg["mtu"])
            else:
                args = (msg["conn"], msg["interval"], msg["latency"], msg["timeout"], msg["status"])
            if self._irq is not None and self._active:
                try:
                    self._irq(event, args)
                except Exception as e:  # noqa: BLE001 - printed; the stack carries on, as on MicroPython
                    print("Uncaught exception in IRQ callback handler")
                    import sys

                    sys.print_exception(e)
            if addr is not None:
                for i in range(len(addr)):
                    addr[i] = 0


_EVENTS_COST = {event: cost for event, cost in _EVENTS.values()}
