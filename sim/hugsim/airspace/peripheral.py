"""Peripheral-side airspace client: one band's radio controller and host stack, plus its physics.

Synchronous and thread-based, for CPython peripherals (tests and tools). Virtual bands use its
MicroPython counterpart, ``sim/hugsim/band/mp/simlink.py``, on the same wire format.

* Everything the band *sends* is fire-and-forget and never blocks on the airspace, so it is safe to
  call from an IRQ handler (MicroPython examples restart advertising inside the disconnect IRQ).
* A reader thread owns the socket. It applies incoming writes to the local attribute store and
  answers reads from it at once (as NimBLE does: reads never reach Python), keeps the set of live
  connections, then queues the event.
* A dispatcher thread delivers queued events one at a time, in arrival order: by calling the
  callback (``on_input`` under ``irq_lock``, as inputs act like hard IRQs on pins; ``on_event``
  without it, since ``port/bluetooth.py`` turns events into scheduled soft IRQs itself), or by
  handing it to ``schedule(fn, arg)`` if given (``micropython.schedule`` signature).

Events passed to ``on_event(name, data)`` (``data`` is a dict):

* ``"connect"``: conn, addr_type, addr (6 bytes)
* ``"disconnect"``: conn, addr_type, addr, reason (HCI reason code)
* ``"write"``: conn, handle (the store already holds the new value)
* ``"indicate_done"``: conn, handle, status (0 = confirmed)
* ``"mtu"``: conn, mtu
* ``"conn_update"``: conn, interval (1.25 ms units), latency, timeout (10 ms units), status
* ``"airspace_lost"``: {} (the airspace went away; every connection was reported disconnected)

Physics: ``on_input(name, value)`` gets ``("button", 1)`` on press, ``("button", 0)`` on release,
``("touch", int)`` on touch, or any other name a control client sent. ``report_output(kind, value,
t_ms)`` records an output (e.g. ``"motor"``, intensity 0.0..1.0; ``"led"``, 0/1 or (r, g, b)) on the band's
timeline in the airspace.
"""

import queue
import socket
import sys
import threading
import traceback

from . import wire

DEFAULT_ATTR_LEN = 20  # MicroPython's default per-attribute buffer (MP_BLUETOOTH_DEFAULT_ATTR_LEN)


_LINK_EVENTS = ("read", "write", "connect", "disconnect", "indicate_done", "mtu", "conn_update")


class _Attr:
    __slots__ = ("alloc", "append", "data")

    def __init__(self, alloc: int = DEFAULT_ATTR_LEN) -> None:
        self.data = b""
        self.alloc = alloc
        self.append = False


class PeripheralRadio:
    """A band's radio on the airspace at ``airspace_addr`` ("127.0.0.1:PORT") with BLE ``address``."""

    def __init__(
        self,
        airspace_addr: str,
        address: str,
        *,
        on_event=None,
        on_input=None,
        schedule=None,
        irq_lock=None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.address = wire.normalize_address(address)
        self.addr_bytes = wire.address_bytes(self.address)
        self.air_address = self.address  # until set_address
        self.on_event = on_event
        self.on_input = on_input
        self.schedule = schedule
        self.irq_lock = irq_lock if irq_lock is not None else threading.RLock()
        self.connections: dict[int, tuple[int, bytes]] = {}  # conn handle -> (addr_type, addr)
        self.closed = False
        self._resetting = 0  # resets sent but not yet confirmed: link events in between are stale
        self._store: dict[int, _Attr] = {}
        self._store_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._events: queue.Queue = queue.Queue()
        host, port = wire.parse_addr(airspace_addr)
        self._sock = socket.create_connection((host, port), timeout=connect_timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(
            wire.encode({"id": 0, "op": "hello", "role": "peripheral", "address": self.address})
        )
        reply = wire.recv_frame(self._sock)
        if reply is None:
            self._sock.close()
            raise wire.NotConnectedError("airspace closed the session during hello")
        if not reply.get("ok"):
            self._sock.close()
            raise wire.error_from_reply(reply)
        self._sock.settimeout(None)
        self._reader = threading.Thread(
            target=self._read_loop, name="airspace-rx-" + self.address, daemon=True
        )
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="airspace-irq-" + self.address, daemon=True
        )
        self._reader.start()
        self._dispatcher.start()

    # ----- sending (fire-and-forget) -----

    def _send(self, msg: dict) -> None:
        if self.closed:
            return
        data = wire.encode(msg)
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError:
                pass  # the reader thread notices the dead socket and reports it

    def reset(self) -> None:
        """The BLE stack restarts (reboot, deep sleep, ``active(False)``): drop every link silently
        (centrals see a supervision timeout), stop advertising, forget the GATT table, the event
        handler and any link event still in flight or queued, go back to the public address. Inputs
        are kept."""
        self._resetting += 1
        self.air_address = self.address  # a fresh stack starts on the public address
        self.on_event = None  # the previous boot's handler; the new stack sets its own
        self.connections.clear()
        kept = []
        while True:
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                break
            if item is None or item[0] != "event":
                kept.append(item)
        for item in kept:
            self._events.put(item)
        with self._store_lock:
            self._store.clear()
        self._send({"op": "reset"})

    def advertise(self, interval_us, adv: bytes = b"", resp: bytes = b"", connectable: bool = True) -> None:
        """Start (or, with ``interval_us=None``, stop) advertising with exactly these payloads."""
        self._send(
            {
                "op": "advertise",
                "interval_us": None if interval_us is None else int(interval_us),
                "adv": wire.hexb(adv or b""),
                "resp": wire.hexb(resp or b""),
                "connectable": bool(connectable),
            }
        )

    def set_address(self, address: str, addr_type: int = 1) -> None:
        """Go on the air with a new (random) address from the next advert on; links keep theirs.
        The airspace refuses it while advertising, as a controller does."""
        self.air_address = wire.normalize_address(address)
        self._send({"op": "set_address", "address": self.air_address, "addr_type": int(addr_type)})

    def register_gatt(self, services: list, values: dict | None = None) -> None:
        """Publish the GATT table and reset the local store.

        ``services``: [{"uuid", "handle", "end_handle", "characteristics": [{"uuid", "decl_handle",
        "handle" (value), "properties" (flags), "descriptors": [{"uuid", "handle", "flags"}]}]}];
        UUIDs as canonical 128-bit strings (``wire.uuid_str``). A CCCD (0x2902) descriptor is
        listed like any other; the airspace keeps CCCD state per connection itself.
        """
        with self._store_lock:
            self._store.clear()
            for svc in services:
                for ch in svc["characteristics"]:
                    self._store[ch["handle"]] = _Attr()
                    for d in ch["descriptors"]:
                        if d["uuid"] != wire.CCCD_UUID:
                            self._store[d["handle"]] = _Attr()
            for h, v in (values or {}).items():
                self._store[h].data = bytes(v)
        self._send({"op": "gatt", "services": services})

    def set_gap_name(self, name: bytes) -> None:
        self._send({"op": "gap_name", "name": wire.hexb(name)})

    def set_mtu_pref(self, mtu: int) -> None:
        self._send({"op": "mtu_pref", "mtu": int(mtu)})

    def notify(self, conn: int, handle: int, data=None, indicate: bool = False) -> bool:
        """Send a notification (or indication) of ``data`` (None = the stored value).

        Returns False (sending nothing) if ``conn`` is not a live connection.
        """
        if conn not in self.connections:
            return False
        value = self.read_value(handle) if data is None else bytes(data)
        self._send(
            {"op": "notify", "conn": conn, "handle": handle, "value": wire.hexb(value), "indicate": indicate}
        )
        return True

    def update(self, handle: int, value: bytes) -> None:
        """Notify/indicate every subscribed central (``gatts_write(..., send_update=True)``)."""
        self._send({"op": "update", "handle": handle, "value": wire.hexb(value)})

    def disconnect(self, conn: int) -> bool:
        if conn not in self.connections:
            return False
        self._send({"op": "disconnect", "conn": conn})
        return True

    def exchange_mtu(self, conn: int) -> bool:
        if conn not in self.connections:
            return False
        self._send({"op": "exchange_mtu", "conn": conn})
        return True

    def report_output(self, kind: str, value, t_ms=None) -> None:
        """Record a physical output on this band's timeline (airspace time added on arrival)."""
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = list(bytes(value))
        elif isinstance(value, tuple):
            value = list(value)
        self._send({"op": "output", "kind": kind, "value": value, "t_ms": t_ms})

    # ----- local attribute store (as MicroPython's gatts_db) -----

    def has_value(self, handle: int) -> bool:
        with self._store_lock:
            return handle in self._store

    def read_value(self, handle: int, *, consume: bool = False) -> bytes:
        """The stored value; ``consume`` clears it afterwards if the attribute is in append mode."""
        with self._store_lock:
            attr = self._store[handle]
            data = attr.data
            if consume and attr.append:
                attr.data = b""
            return data

    def write_value(self, handle: int, data) -> None:
        """Local write (``gatts_write``): replaces the value, growing the buffer if needed."""
        data = bytes(data)
        with self._store_lock:
            attr = self._store[handle]
            attr.data = data
            attr.alloc = max(attr.alloc, len(data))

    def set_buffer(self, handle: int, length: int, append: bool = False) -> None:
        with self._store_lock:
            attr = self._store[handle]
            attr.alloc = int(length)
            attr.append = bool(append)
            attr.data = attr.data[: attr.alloc]

    def _remote_write(self, handle: int, data: bytes) -> bool:
        with self._store_lock:
            attr = self._store.get(handle)
            if attr is None:
                return False
            offset = len(attr.data) if attr.append else 0
            total = min(attr.alloc, offset + len(data))
            attr.data = (attr.data[:offset] + data)[:total]
            return True

    # ----- receiving -----

    def _read_loop(self) -> None:
        while True:
            msg = wire.recv_frame(self._sock)
            if msg is None:
                break
            ev = msg.get("ev")
            try:
                if ev == "reset_done":
                    self._resetting = max(0, self._resetting - 1)
                elif self._resetting and ev in _LINK_EVENTS:
                    if ev == "read":
                        self._send({"op": "read_rsp", "req": msg["req"], "att": wire.ATT_UNLIKELY})
                elif ev == "read":
                    self._answer_read(msg)
                elif ev == "write":
                    self._remote_write(msg["handle"], wire.unhex(msg["value"]))
                    if "req" in msg:
                        self._send({"op": "write_ack", "req": msg["req"]})
                    self._queue_event("write", {"conn": msg["conn"], "handle": msg["handle"]})
                elif ev == "connect":
                    addr = wire.unhex(msg["addr"])
                    self.connections[msg["conn"]] = (msg["addr_type"], addr)
                    self._queue_event(
                        "connect", {"conn": msg["conn"], "addr_type": msg["addr_type"], "addr": addr}
                    )
                elif ev == "disconnect":
                    self.connections.pop(msg["conn"], None)
                    self._queue_event(
                        "disconnect",
                        {
                            "conn": msg["conn"],
                            "addr_type": msg["addr_type"],
                            "addr": wire.unhex(msg["addr"]),
                            "reason": msg.get("reason", 0),
                        },
                    )
                elif ev == "input":
                    self._events.put(("input", msg["name"], msg.get("value")))
                elif ev in ("indicate_done", "mtu", "conn_update"):
                    data = {k: v for k, v in msg.items() if k != "ev"}
                    self._queue_event(ev, data)
                elif ev == "error":
                    print("airspace: %s" % msg.get("message"), file=sys.stderr)
            except (KeyError, TypeError, ValueError):
                traceback.print_exc()
        # The airspace is gone: every link is gone with it.
        self.closed = True
        for conn, (addr_type, addr) in list(self.connections.items()):
            self._queue_event(
                "disconnect",
                {
                    "conn": conn,
                    "addr_type": addr_type,
                    "addr": addr,
                    "reason": wire.REASON_SUPERVISION_TIMEOUT,
                },
            )
        self.connections.clear()
        self._queue_event("airspace_lost", {})
        self._events.put(None)

    def _answer_read(self, msg: dict) -> None:
        with self._store_lock:
            attr = self._store.get(msg["handle"])
            value = None if attr is None else attr.data
        if value is None:
            self._send({"op": "read_rsp", "req": msg["req"], "att": wire.ATT_INVALID_HANDLE})
        else:
            self._send({"op": "read_rsp", "req": msg["req"], "value": wire.hexb(value)})

    def _queue_event(self, name: str, data: dict) -> None:
        self._events.put(("event", name, data))

    def _dispatch_loop(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            kind, name, data = item
            fn = self.on_event if kind == "event" else self.on_input
            if fn is None:
                continue
            if self.schedule is not None:
                self.schedule(_call, (fn, name, data))
            elif kind == "input":
                with self.irq_lock:  # inputs drive pins, whose hard IRQs exclude disable_irq()
                    _call((fn, name, data))
            else:  # BLE events: the consumer (port/bluetooth.py) schedules its own soft IRQ
                _call((fn, name, data))

    def close(self) -> None:
        """Leave the airspace (as if the band were switched off)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(2.0)
        self._dispatcher.join(2.0)


def _call(args) -> None:
    fn, name, data = args
    try:
        fn(name, data)
    except Exception:  # noqa: BLE001 - an exception in a handler is printed and the stack carries on, as on MicroPython
        print("Uncaught exception in airspace event handler %r:" % (name,), file=sys.stderr)
        traceback.print_exc()
