"""The airspace: the simulated radio medium and physical world, as an asyncio TCP server.

Three kinds of client say hello on their own TCP session:

* ``peripheral`` (a band's radio, see ``peripheral.py``): advertises, registers a GATT table,
  answers reads from its own attribute store, notifies, reports physical outputs (motor, LED).
* ``central`` (a phone, see ``central.py``): scans, connects, reads, writes, subscribes.
* ``control`` (tests, demo, UI, see ``control.py``): presses buttons, reads output timelines,
  moves nodes out of range, injects faults and latency.

A session that goes away (a killed band or app) takes its links and adverts with it.

This file holds the server and its sessions; the rest of :class:`Airspace` is by job:
``sessions.py`` (what is kept per session, node and link), ``links.py`` (adverts, scanning,
connecting, dropping), ``gatt_relay.py`` (GATT between a band and a central), ``faults.py`` (range,
drops, latency on request), ``control_ops.py`` (presses, output timelines, the node list, the
recording) and ``recorder.py`` (the passive sniffer).
"""

import asyncio
import itertools
import time

from . import wire
from .control_ops import ControlOps
from .faults import FAULT_OPS, Faults
from .gatt_relay import GattRelay
from .links import LINK_OPS, Links
from .recorder import Recorder
from .sessions import Node, Session
from .wire import AirspaceError, BusyError


class Airspace(Links, GattRelay, Faults, ControlOps):
    """The simulated radio medium. ``addr = await Airspace().start()`` -> "127.0.0.1:PORT"."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default_rssi: int = wire.DEFAULT_RSSI,
        record_path: str | None = None,
        link_limit: int = wire.DEFAULT_LINK_LIMIT,
    ) -> None:
        wire.parse_addr("%s:%d" % (host, port))  # loopback only
        self.host = host
        self.port = port
        self.default_rssi = default_rssi
        self.latency_ms = 0.0
        self.nodes: dict[str, Node] = {}
        self.timelines: dict[str, list] = {}
        self.rssi: dict[str, int | None] = {}  # per node; None = out of range
        self.pair_rssi: dict[tuple[str, str], int | None] = {}  # (central name, node) override
        self.link_limit = link_limit  # links per central ...
        self.link_limits: dict[str, int] = {}  # ... or, by central name, this many
        self.sessions: set[Session] = set()
        self._handlers: set[asyncio.Task] = set()  # one per client connection
        self._server: asyncio.AbstractServer | None = None
        self._t0 = time.monotonic()
        self.recorder = Recorder(self.now_ms, record_path)  # the passive sniffer (``recorder.py``)
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
        self.recorder.close()

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

    # ----- sessions -----

    async def _handle_client(self, reader, writer) -> None:
        session = Session(self, reader, writer)
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

    async def _end_session(self, session: Session) -> None:
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

    async def _request(self, session: Session, msg: dict) -> None:
        req_id = msg["id"]
        try:
            op = msg.get("op")
            if op == "hello":
                result = self._hello(session, msg)
            elif session.role == "central":
                handler = self._link_op if op in LINK_OPS else self._gatt_op
                result = await handler(session, op, msg)
            elif session.role == "control":
                handler = self._fault_op if op in FAULT_OPS else self._control_op
                result = await handler(session, op, msg)
            else:
                raise AirspaceError("unknown request %r for role %r" % (op, session.role))
            reply = {"id": req_id, "ok": True}
            reply.update(result or {})
        except AirspaceError as exc:
            reply = wire.error_reply(req_id, exc)
        except (KeyError, TypeError, ValueError) as exc:
            reply = wire.error_reply(req_id, AirspaceError("bad request %r: %r" % (msg.get("op"), exc)))
        session.send(reply)

    def _hello(self, session: Session, msg: dict) -> dict:
        if session.role is not None:
            raise AirspaceError("hello twice")
        role = msg["role"]
        if role == "peripheral":
            address = wire.normalize_address(msg["address"])
            if address in self.nodes:
                raise BusyError("address %s is already on the air" % address)
            session.role = role
            node = Node(address, session)
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
