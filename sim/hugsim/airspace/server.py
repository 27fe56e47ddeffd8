"""The airspace: the simulated radio medium and physical world, as an asyncio TCP server.

Three kinds of client say hello on their own TCP session:

* ``peripheral`` (a band's radio, see ``peripheral.py``): advertises, registers a GATT table,
  answers reads from its own attribute store, notifies, reports physical outputs (motor, LED).
* ``central`` (a phone, see ``central.py``): scans, connects, reads, writes, subscribes.
* ``control`` (tests, demo, UI, see ``control.py``): presses buttons, reads output timelines,
  moves nodes out of range, injects faults and latency.

A session that goes away (a killed band or app) takes its links and adverts with it.
"""

import asyncio
import itertools
import time

from . import wire
from .wire import (
    ATT_INVALID_HANDLE,
    ATT_READ_NOT_PERMITTED,
    ATT_WRITE_NOT_PERMITTED,
    AirspaceError,
    AirspaceTimeoutError,
    BusyError,
    GattError,
    NotConnectedError,
    NotFoundError,
)

FLAG_READ = 0x02
FLAG_WRITE_NO_RESPONSE = 0x04
FLAG_WRITE = 0x08
FLAG_NOTIFY = 0x10
FLAG_INDICATE = 0x20

# NimBLE-like fixed attributes in front of the user services (see port/bluetooth.py).
GAP_NAME_HANDLE = 3
GAP_APPEARANCE_HANDLE = 5
FIRST_USER_HANDLE = 10

CENTRAL_DEFAULT_MTU_PREF = 517  # what phones and BlueZ offer in an MTU exchange
PEER_REPLY_TIMEOUT_S = 5.0  # a peripheral that does not answer a read/ack in time: ATT timeout
SCAN_REPORT_MIN_S = 0.1
SCAN_REPORT_MAX_S = 1.0


class _Session:
    def __init__(self, server: "Airspace", reader, writer) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.role: str | None = None
        self.closed = False
        self._queue: asyncio.Queue = asyncio.Queue()
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())
        # central state
        self.name = ""
        self.address = ""
        self.scanning = False
        self.active_scan = True
        self.adv_due: dict[str, float] = {}
        self.scan_task: asyncio.Task | None = None
        self.conns: dict[str, _Conn] = {}
        # control state
        self.watching = False
        # peripheral state
        self.node: _Node | None = None

    def send(self, msg: dict, *, delayed: bool = True) -> None:
        if self.closed:
            return
        delay = self.server.latency_ms / 1000.0 if delayed and self.role != "control" else 0.0
        self._queue.put_nowait((asyncio.get_running_loop().time() + delay, msg))

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            at, msg = await self._queue.get()
            if msg is None:
                break
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                self.writer.write(wire.encode(msg))
                await self.writer.drain()
            except (ConnectionError, RuntimeError):
                break

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.put_nowait((0.0, None))
        try:
            await asyncio.wait_for(self._sender, 1.0)
        except (TimeoutError, asyncio.CancelledError):
            self._sender.cancel()
        self.writer.close()


class _Node:
    """A registered peripheral (one band's radio)."""

    def __init__(self, address: str, session: _Session) -> None:
        self.address = address
        self.session = session
        self.adv = b""
        self.resp = b""
        self.interval_us: int | None = None
        self.connectable = True
        self.gap_name: bytes = b"ESP32"
        self.services: list = []
        self.chars: dict[int, dict] = {}  # value handle -> characteristic entry
        self.descs: dict[int, dict] = {}  # user descriptor handle -> descriptor entry
        self.cccds: dict[int, int] = {}  # CCCD handle -> characteristic value handle
        self.conns: dict[int, _Conn] = {}
        self.mtu_pref = 256
        self.faults: list[dict] = []
        self.counters = {"notify": 0, "write": 0}

    @property
    def advertising(self) -> bool:
        return self.interval_us is not None

    def set_services(self, services: list) -> None:
        self.services = services
        self.chars.clear()
        self.descs.clear()
        self.cccds.clear()
        for svc in services:
            for ch in svc["characteristics"]:
                self.chars[ch["handle"]] = ch
                for d in ch["descriptors"]:
                    if d["uuid"] == wire.CCCD_UUID:
                        self.cccds[d["handle"]] = ch["handle"]
                    else:
                        self.descs[d["handle"]] = d

    def new_handle(self) -> int:
        return next(h for h in itertools.count() if h not in self.conns)


class _Conn:
    def __init__(self, node: _Node, central: _Session, handle: int) -> None:
        self.node = node
        self.central = central
        self.handle = handle
        self.mtu = wire.DEFAULT_MTU
        self.cccd: dict[int, int] = {}  # CCCD handle -> 0x0001 notify | 0x0002 indicate
        self.up = True
        self.pending: set[asyncio.Future] = set()


class Airspace:
    """The simulated radio medium. ``addr = await Airspace().start()`` -> "127.0.0.1:PORT"."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, default_rssi: int = wire.DEFAULT_RSSI
    ) -> None:
        wire.parse_addr("%s:%d" % (host, port))  # loopback only
        self.host = host
        self.port = port
        self.default_rssi = default_rssi
        self.latency_ms = 0.0
        self.nodes: dict[str, _Node] = {}
        self.timelines: dict[str, list] = {}
        self.rssi: dict[str, int | None] = {}  # per node; None = out of range
        self.pair_rssi: dict[tuple[str, str], int | None] = {}  # (central name, node) override
        self.sessions: set[_Session] = set()
        self._handlers: set[asyncio.Task] = set()  # one per client connection
        self._server: asyncio.AbstractServer | None = None
        self._t0 = time.monotonic()
        self._changed: asyncio.Event | None = None
        self._req_ids = itertools.count(1)
        self._central_ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self.address = ""

    # ----- lifecycle -----

    async def start(self) -> str:
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._handle_client, self.host, self.port)
        port = self._server.sockets[0].getsockname()[1]
        self.address = "%s:%d" % (self.host, port)
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self.sessions):
            await self._end_session(s)
        # Each handler ends at the EOF of its closed connection. Left running, asyncio.run would cancel
        # them at exit, and Python 3.11's start_server callback calls task.exception() on a cancelled
        # task, which logs a CancelledError traceback (fixed in 3.12).
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> "Airspace":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def now_ms(self) -> float:
        return round((time.monotonic() - self._t0) * 1000.0, 3)

    # ----- helpers -----

    def _pulse(self) -> None:
        ev = self._changed
        self._changed = asyncio.Event()
        if ev is not None:
            ev.set()

    async def _wait_change(self, deadline: float) -> bool:
        ev = self._changed
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0 or ev is None:
            return False
        try:
            await asyncio.wait_for(ev.wait(), remaining)
        except TimeoutError:
            return False
        return True

    def rssi_for(self, address: str, central_name: str = "") -> int | None:
        key = (central_name, address)
        if key in self.pair_rssi:
            return self.pair_rssi[key]
        return self.rssi.get(address, self.default_rssi)

    def visible(self, address: str, central_name: str = "") -> bool:
        r = self.rssi_for(address, central_name)
        return r is not None and r >= wire.VISIBLE_RSSI_FLOOR

    def _centrals(self):
        return [s for s in self.sessions if s.role == "central" and not s.closed]

    def _watchers(self):
        return [s for s in self.sessions if s.role == "control" and s.watching and not s.closed]

    def _adv_event(self, node: _Node, central: _Session) -> dict:
        resp = node.resp if (central.active_scan and node.resp) else None
        return {
            "ev": "adv",
            "address": node.address,
            "addr_type": 0,
            "rssi": self.rssi_for(node.address, central.name),
            "adv": wire.hexb(node.adv),
            "resp": None if resp is None else wire.hexb(resp),
            "connectable": node.connectable,
        }

    def _announce(self, node: _Node) -> None:
        """Adverts changed (or a node came into range): tell scanners at once, wake connectors."""
        for c in self._centrals():
            if c.scanning and node.advertising and self.visible(node.address, c.name):
                c.send(self._adv_event(node, c))
                c.adv_due[node.address] = asyncio.get_running_loop().time() + self._report_period(node)
        self._pulse()

    @staticmethod
    def _report_period(node: _Node) -> float:
        return min(SCAN_REPORT_MAX_S, max(SCAN_REPORT_MIN_S, (node.interval_us or 0) / 1e6))

    async def _scan_loop(self, central: _Session) -> None:
        loop = asyncio.get_running_loop()
        while central.scanning and not central.closed:
            now = loop.time()
            next_due = now + SCAN_REPORT_MAX_S
            for node in list(self.nodes.values()):
                if not node.advertising or not self.visible(node.address, central.name):
                    continue
                due = central.adv_due.get(node.address, 0.0)
                if now >= due:
                    central.send(self._adv_event(node, central))
                    due = now + self._report_period(node)
                    central.adv_due[node.address] = due
                next_due = min(next_due, due)
            await asyncio.sleep(max(0.01, next_due - now))

    def _drop(
        self, conn: _Conn, reason_central: int, reason_peripheral: int, *, tell_peripheral: bool = True
    ) -> None:
        if not conn.up:
            return
        conn.up = False
        node, central = conn.node, conn.central
        if node.conns.get(conn.handle) is conn:
            del node.conns[conn.handle]
        if central.conns.get(node.address) is conn:
            del central.conns[node.address]
        for fut in list(conn.pending):
            if not fut.done():
                fut.set_exception(NotConnectedError("link to %s dropped" % node.address))
        central.send({"ev": "disconnected", "address": node.address, "reason": reason_central})
        if tell_peripheral:
            node.session.send(
                {
                    "ev": "disconnect",
                    "conn": conn.handle,
                    "addr_type": 0,
                    "addr": wire.hexb(wire.address_bytes(central.address)),
                    "reason": reason_peripheral,
                }
            )
        self._pulse()

    def _drop_unreachable(self) -> None:
        for node in list(self.nodes.values()):
            for conn in list(node.conns.values()):
                if not self.visible(node.address, conn.central.name):
                    self._drop(conn, wire.REASON_SUPERVISION_TIMEOUT, wire.REASON_SUPERVISION_TIMEOUT)

    def _fault(self, node: _Node, op: str) -> str | None:
        """Count one `op` from/to `node`; return 'before'/'after' if a fault fires on it."""
        node.counters[op] += 1
        for f in node.faults:
            if f["op"] == op:
                f["left"] -= 1
                if f["left"] <= 0:
                    node.faults.remove(f)
                    return f["when"]
                break
        return None

    async def _await_peer(self, conn: _Conn, fut: asyncio.Future, what: str):
        conn.pending.add(fut)
        try:
            return await asyncio.wait_for(fut, PEER_REPLY_TIMEOUT_S)
        except TimeoutError:
            raise AirspaceTimeoutError("%s: %s did not answer" % (what, conn.node.address)) from None
        finally:
            conn.pending.discard(fut)

    def _new_wait(self) -> tuple[int, asyncio.Future]:
        req = next(self._req_ids)
        fut = asyncio.get_running_loop().create_future()
        self._waiting[req] = fut
        fut.add_done_callback(lambda _f, r=req: self._waiting.pop(r, None))
        return req, fut

    # ----- sessions -----

    async def _handle_client(self, reader, writer) -> None:
        session = _Session(self, reader, writer)
        self.sessions.add(session)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            while True:
                try:
                    msg = await wire.read_frame(reader)
                except (ValueError, ConnectionError):
                    break
                if msg is None:
                    break
                if "id" in msg:
                    asyncio.get_running_loop().create_task(self._request(session, msg))
                else:
                    try:
                        self._peripheral_op(session, msg)
                    except (AirspaceError, KeyError, TypeError, ValueError) as exc:
                        session.send({"ev": "error", "message": "%s: %s" % (msg.get("op"), exc)})
        finally:
            await self._end_session(session)
            self._handlers.discard(handler)

    async def _end_session(self, session: _Session) -> None:
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        session.scanning = False
        if session.scan_task is not None:
            session.scan_task.cancel()
        node = session.node
        if node is not None and self.nodes.get(node.address) is node:
            for conn in list(node.conns.values()):
                self._drop(conn, wire.REASON_SUPERVISION_TIMEOUT, wire.REASON_SUPERVISION_TIMEOUT)
            del self.nodes[node.address]
            for w in self._watchers():
                w.send({"ev": "node", "address": node.address, "up": False, "t_ms": self.now_ms()})
        for conn in list(session.conns.values()):
            self._drop(conn, wire.REASON_SUPERVISION_TIMEOUT, wire.REASON_SUPERVISION_TIMEOUT)
        await session.close()
        self._pulse()

    async def _request(self, session: _Session, msg: dict) -> None:
        req_id = msg["id"]
        try:
            op = msg.get("op")
            if op == "hello":
                result = self._hello(session, msg)
            elif session.role == "central":
                result = await self._central_op(session, op, msg)
            elif session.role == "control":
                result = await self._control_op(session, op, msg)
            else:
                raise AirspaceError("unknown request %r for role %r" % (op, session.role))
            reply = {"id": req_id, "ok": True}
            reply.update(result or {})
        except AirspaceError as exc:
            reply = wire.error_reply(req_id, exc)
        except (KeyError, TypeError, ValueError) as exc:
            reply = wire.error_reply(req_id, AirspaceError("bad request %r: %r" % (msg.get("op"), exc)))
        session.send(reply)

    def _hello(self, session: _Session, msg: dict) -> dict:
        if session.role is not None:
            raise AirspaceError("hello twice")
        role = msg["role"]
        if role == "peripheral":
            address = wire.normalize_address(msg["address"])
            if address in self.nodes:
                raise BusyError("address %s is already on the air" % address)
            session.role = role
            node = _Node(address, session)
            session.node = node
            self.nodes[address] = node
            self.timelines.setdefault(address, [])
            for w in self._watchers():
                w.send({"ev": "node", "address": address, "up": True, "t_ms": self.now_ms()})
            self._pulse()
            return {"address": address, "t_ms": self.now_ms()}
        if role == "central":
            session.role = role
            n = next(self._central_ids)
            session.address = wire.normalize_address(
                msg.get("address") or "CE:00:00:00:%02X:%02X" % (n >> 8, n & 255)
            )
            session.name = msg.get("name") or session.address
            return {"address": session.address, "name": session.name}
        if role == "control":
            session.role = role
            return {"t_ms": self.now_ms()}
        raise AirspaceError("unknown role %r" % role)

    # ----- peripheral side (fire-and-forget messages) -----

    def _peripheral_op(self, session: _Session, msg: dict) -> None:
        node = session.node
        if session.role != "peripheral" or node is None:
            raise AirspaceError("not a peripheral session")
        op = msg["op"]
        if op == "reset":
            # The band's BLE stack restarted (reboot, active(False)): links vanish without a word
            # (centrals see a supervision timeout), adverts stop, the GATT table is gone.
            for conn in list(node.conns.values()):
                self._drop(conn, wire.REASON_SUPERVISION_TIMEOUT, 0, tell_peripheral=False)
            node.interval_us = None
            node.set_services([])
            session.send({"ev": "reset_done"})
            self._pulse()
        elif op == "advertise":
            node.interval_us = msg["interval_us"]
            node.adv = wire.unhex_opt(msg.get("adv")) or b""
            node.resp = wire.unhex_opt(msg.get("resp")) or b""
            node.connectable = bool(msg.get("connectable", True))
            self._announce(node)
        elif op == "gatt":
            node.set_services(msg["services"])
        elif op == "gap_name":
            node.gap_name = wire.unhex(msg["name"])
        elif op == "mtu_pref":
            node.mtu_pref = int(msg["mtu"])
        elif op == "notify":
            conn = node.conns.get(msg["conn"])
            if conn is not None:
                self._record(node, "notify", node.chars.get(msg["handle"], {}).get("uuid"), None)
                self._notify(conn, msg["handle"], wire.unhex(msg["value"]), bool(msg.get("indicate")))
        elif op == "update":
            value = wire.unhex(msg["value"])
            for conn in list(node.conns.values()):
                for cccd_h, vh in node.cccds.items():
                    if vh == msg["handle"] and conn.cccd.get(cccd_h, 0):
                        bits = conn.cccd[cccd_h]
                        self._notify(conn, vh, value, indicate=not (bits & 1))
        elif op == "disconnect":
            conn = node.conns.get(msg["conn"])
            if conn is not None:
                self._drop(conn, wire.REASON_REMOTE_USER, wire.REASON_LOCAL_HOST)
        elif op == "exchange_mtu":
            conn = node.conns.get(msg["conn"])
            if conn is not None:
                self._set_mtu(conn, min(node.mtu_pref, CENTRAL_DEFAULT_MTU_PREF))
        elif op == "output":
            self._record(node, msg["kind"], msg.get("value"), msg.get("t_ms"))
        elif op in ("read_rsp", "write_ack"):
            fut = self._waiting.get(msg["req"])
            if fut is not None and not fut.done():
                fut.set_result(msg)
        else:
            raise AirspaceError("unknown peripheral op %r" % op)

    def _set_mtu(self, conn: _Conn, mtu: int) -> None:
        conn.mtu = max(wire.DEFAULT_MTU, mtu)
        conn.node.session.send({"ev": "mtu", "conn": conn.handle, "mtu": conn.mtu})
        conn.central.send({"ev": "mtu", "address": conn.node.address, "mtu": conn.mtu})

    def _record(self, node: _Node, kind: str, value: object, band_t_ms: object) -> None:
        """A band's physical output (motor, LED, ...) or a notification it put on the air
        (``notify``, value = the characteristic's UUID), on its timeline in airspace time."""
        entry = [self.now_ms(), kind, value, band_t_ms]
        self.timelines.setdefault(node.address, []).append(entry)
        for w in self._watchers():
            w.send({"ev": "output", "address": node.address, "entry": entry})

    def _notify(self, conn: _Conn, handle: int, value: bytes, indicate: bool) -> None:
        if not conn.up:
            return
        when = self._fault(conn.node, "notify")
        if when == "before":
            if indicate:
                conn.node.session.send(
                    {"ev": "indicate_done", "conn": conn.handle, "handle": handle, "status": 7}
                )
            self._drop(conn, wire.REASON_SUPERVISION_TIMEOUT, wire.REASON_SUPERVISION_TIMEOUT)
            return
        value = value[: conn.mtu - 3]
        conn.central.send(
            {
                "ev": "notify",
                "address": conn.node.address,
                "handle": handle,
                "value": wire.hexb(value),
                "indication": indicate,
            }
        )
        if indicate:
            status = 7 if when == "after" else 0  # the confirmation is lost with the link
            conn.node.session.send(
                {"ev": "indicate_done", "conn": conn.handle, "handle": handle, "status": status}
            )
        if when == "after":
            self._drop(conn, wire.REASON_SUPERVISION_TIMEOUT, wire.REASON_SUPERVISION_TIMEOUT)

    # ----- central side -----

    def _conn_of(self, central: _Session, address: str) -> _Conn:
        address = wire.normalize_address(address)
        conn = central.conns.get(address)
        if conn is None or not conn.up:
            raise NotConnectedError("not connected to %s" % address)
        return conn

    def _conn_info(self, conn: _Conn) -> dict:
        return {
            "address": conn.node.address,
            "conn": conn.handle,
            "mtu": conn.mtu,
            "services": conn.node.services,
        }

    async def _central_op(self, central: _Session, op: str, msg: dict) -> dict | None:
        loop = asyncio.get_running_loop()
        if op == "scan_start":
            central.active_scan = bool(msg.get("active", True))
            central.adv_due.clear()
            central.scanning = True
            for node in list(self.nodes.values()):
                if node.advertising and self.visible(node.address, central.name):
                    central.send(self._adv_event(node, central))
                    central.adv_due[node.address] = loop.time() + self._report_period(node)
            if central.scan_task is None or central.scan_task.done():
                central.scan_task = loop.create_task(self._scan_loop(central))
            return None
        if op == "scan_stop":
            central.scanning = False
            if central.scan_task is not None:
                central.scan_task.cancel()
                central.scan_task = None
            return None
        if op == "connect":
            address = wire.normalize_address(msg["address"])
            existing = central.conns.get(address)
            if existing is not None and existing.up:
                return self._conn_info(existing)
            deadline = loop.time() + float(msg.get("timeout_ms", 10000)) / 1000.0
            while True:
                node = self.nodes.get(address)
                if (
                    node is not None
                    and node.advertising
                    and node.connectable
                    and self.visible(address, central.name)
                ):
                    break
                if not await self._wait_change(deadline):
                    raise AirspaceTimeoutError("%s is not advertising connectably in range" % address)
                if central.closed:
                    raise NotConnectedError("central went away")
            conn = _Conn(node, central, node.new_handle())
            node.conns[conn.handle] = conn
            central.conns[address] = conn
            node.interval_us = None  # a connection stops connectable advertising, as on NimBLE
            node.session.send(
                {
                    "ev": "connect",
                    "conn": conn.handle,
                    "addr_type": 0,
                    "addr": wire.hexb(wire.address_bytes(central.address)),
                }
            )
            self._pulse()
            return self._conn_info(conn)
        if op == "disconnect":
            address = wire.normalize_address(msg["address"])
            conn = central.conns.get(address)
            if conn is not None:
                self._drop(conn, wire.REASON_LOCAL_HOST, wire.REASON_REMOTE_USER)
            return None
        if op == "read":
            conn = self._conn_of(central, msg["address"])
            return {"value": wire.hexb(await self._read(conn, int(msg["handle"])))}
        if op == "write":
            conn = self._conn_of(central, msg["address"])
            await self._write(
                conn, int(msg["handle"]), wire.unhex(msg["value"]), bool(msg.get("response", True))
            )
            return None
        if op == "exchange_mtu":
            conn = self._conn_of(central, msg["address"])
            self._set_mtu(conn, min(int(msg.get("mtu", CENTRAL_DEFAULT_MTU_PREF)), conn.node.mtu_pref))
            return {"mtu": conn.mtu}
        if op == "conn_update":
            conn = self._conn_of(central, msg["address"])
            conn.node.session.send(
                {
                    "ev": "conn_update",
                    "conn": conn.handle,
                    "interval": int(round(float(msg["interval_ms"]) / 1.25)),
                    "latency": int(msg.get("latency", 0)),
                    "timeout": int(round(float(msg.get("timeout_ms", 5000)) / 10.0)),
                    "status": 0,
                }
            )
            return None
        raise AirspaceError("unknown central op %r" % op)

    async def _read(self, conn: _Conn, handle: int) -> bytes:
        node = conn.node
        if handle == GAP_NAME_HANDLE:
            return node.gap_name
        if handle == GAP_APPEARANCE_HANDLE:
            return b"\x00\x00"
        if handle in node.cccds:
            return conn.cccd.get(handle, 0).to_bytes(2, "little")
        if handle in node.chars:
            if not node.chars[handle]["properties"] & FLAG_READ:
                raise GattError("handle %d is not readable" % handle, ATT_READ_NOT_PERMITTED)
        elif handle in node.descs:
            if not node.descs[handle]["flags"] & FLAG_READ:
                raise GattError("descriptor %d is not readable" % handle, ATT_READ_NOT_PERMITTED)
        else:
            raise GattError("no attribute with handle %d" % handle, ATT_INVALID_HANDLE)
        req, fut = self._new_wait()
        node.session.send({"ev": "read", "req": req, "conn": conn.handle, "handle": handle})
        rsp = await self._await_peer(conn, fut, "read")
        if rsp.get("att"):
            raise GattError("read of %d refused" % handle, rsp["att"])
        return wire.unhex(rsp.get("value") or "")

    async def _write(self, conn: _Conn, handle: int, value: bytes, response: bool) -> None:
        node = conn.node
        if handle in node.cccds:
            if len(value) != 2:
                raise GattError("CCCD value must be 2 bytes", 0x0D)
            conn.cccd[handle] = int.from_bytes(value, "little")
            return
        if handle in node.chars:
            if not node.chars[handle]["properties"] & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE):
                raise GattError("handle %d is not writable" % handle, ATT_WRITE_NOT_PERMITTED)
        elif handle in node.descs:
            if not node.descs[handle]["flags"] & FLAG_WRITE:
                raise GattError("descriptor %d is not writable" % handle, ATT_WRITE_NOT_PERMITTED)
        else:
            raise GattError("no attribute with handle %d" % handle, ATT_INVALID_HANDLE)
        when = self._fault(node, "write")
        if when == "before":
            self._drop(conn, wire.REASON_SUPERVISION_TIMEOUT, wire.REASON_SUPERVISION_TIMEOUT)
            raise NotConnectedError("link to %s dropped before the write arrived" % node.address)
        msg = {"ev": "write", "conn": conn.handle, "handle": handle, "value": wire.hexb(value)}
        if response:
            req, fut = self._new_wait()
            msg["req"] = req
            node.session.send(msg)
            await self._await_peer(conn, fut, "write")
        else:
            node.session.send(msg)
        if when == "after":
            self._drop(conn, wire.REASON_SUPERVISION_TIMEOUT, wire.REASON_SUPERVISION_TIMEOUT)
            if response:
                raise NotConnectedError("link to %s dropped before the write response" % node.address)

    # ----- control -----

    def _node(self, address: str) -> _Node:
        address = wire.normalize_address(address)
        node = self.nodes.get(address)
        if node is None:
            raise NotFoundError("no band %s on the air" % address)
        return node

    async def _control_op(self, session: _Session, op: str, msg: dict) -> dict | None:
        if op == "now":
            return {"t_ms": self.now_ms()}
        if op == "input":
            node = self._node(msg["address"])
            node.session.send({"ev": "input", "name": msg["name"], "value": msg.get("value")}, delayed=False)
            return {"t_ms": self.now_ms()}
        if op == "hold":
            node = self._node(msg["address"])
            name = msg.get("name", "button")
            node.session.send({"ev": "input", "name": name, "value": 1}, delayed=False)
            t_press = self.now_ms()
            await asyncio.sleep(float(msg["ms"]) / 1000.0)  # the physical hold itself
            node.session.send({"ev": "input", "name": name, "value": 0}, delayed=False)
            return {"t_press": t_press, "t_release": self.now_ms()}
        if op == "timeline":
            address = wire.normalize_address(msg["address"])
            if address not in self.timelines:
                raise NotFoundError("no band %s has been on the air" % address)
            return {"entries": self.timelines[address]}
        if op == "clear_timeline":
            self.timelines[wire.normalize_address(msg["address"])] = []
            return None
        if op == "set_rssi":
            address = wire.normalize_address(msg["address"])
            rssi = msg.get("rssi")
            if msg.get("central"):
                self.pair_rssi[(msg["central"], address)] = rssi
            else:
                self.rssi[address] = rssi
            self._drop_unreachable()
            node = self.nodes.get(address)
            if node is not None:
                self._announce(node)
            return None
        if op == "drop_link":
            node = self._node(msg["address"])
            dropped = 0
            for conn in list(node.conns.values()):
                if not msg.get("central") or conn.central.name == msg["central"]:
                    self._drop(conn, wire.REASON_SUPERVISION_TIMEOUT, wire.REASON_SUPERVISION_TIMEOUT)
                    dropped += 1
            return {"dropped": dropped}
        if op == "drop_after":
            node = self._node(msg["address"])
            kind = msg.get("kind", "notify")
            when = msg.get("when", "before")
            n = int(msg.get("n", 1))
            if kind not in ("notify", "write") or when not in ("before", "after") or n < 1:
                raise AirspaceError("drop_after needs op notify|write, when before|after, n >= 1")
            node.faults.append({"op": kind, "when": when, "left": n})
            return None
        if op == "set_latency":
            self.latency_ms = max(0.0, float(msg["ms"]))
            return None
        if op == "list_nodes":
            return {"nodes": [self._node_info(n) for n in self.nodes.values()]}
        if op == "watch":
            session.watching = True
            return {"nodes": [n.address for n in self.nodes.values()], "t_ms": self.now_ms()}
        raise AirspaceError("unknown control op %r" % op)

    def _node_info(self, node: _Node) -> dict:
        return {
            "address": node.address,
            "advertising": node.advertising,
            "interval_us": node.interval_us,
            "connectable": node.connectable,
            "adv": wire.hexb(node.adv),
            "resp": wire.hexb(node.resp),
            "rssi": self.rssi_for(node.address),
            "gap_name": node.gap_name.decode("utf-8", "replace"),
            "connections": [
                {
                    "conn": c.handle,
                    "central": c.central.name,
                    "central_address": c.central.address,
                    "mtu": c.mtu,
                }
                for c in node.conns.values()
            ],
            "counters": dict(node.counters),
        }
