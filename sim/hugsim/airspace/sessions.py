"""What the airspace server keeps per client: a session (one TCP client: a band's radio, a phone or a
control), a node (a band's radio on the air: adverts, GATT table, faults to inject) and a link
between a node and a central."""

import asyncio
import itertools
from typing import TYPE_CHECKING

from . import wire

if TYPE_CHECKING:
    from .server import Airspace


class Session:
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
        self.conns: dict[str, Conn] = {}
        # control state
        self.watching = False
        # peripheral state
        self.node: Node | None = None

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


class Node:
    """A registered peripheral (one band's radio).

    ``address`` is the band's identity (its factory address, given at hello): the handle of control
    sessions and timelines, never seen by a central unless the band advertises with it. ``air`` is the
    address it is on the air with (``addr_type`` 0 public, 1 random), which the band may change."""

    def __init__(self, address: str, session: Session) -> None:
        self.address = address
        self.air = address
        self.addr_type = 0
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
        self.conns: dict[int, Conn] = {}
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


class Conn:
    def __init__(self, node: Node, central: Session, handle: int) -> None:
        self.node = node
        self.air = node.air  # the peripheral's address for the whole link, whatever it advertises later
        self.central = central
        self.handle = handle
        self.mtu = wire.DEFAULT_MTU
        self.cccd: dict[int, int] = {}  # CCCD handle -> 0x0001 notify | 0x0002 indicate
        self.up = True
        self.pending: set[asyncio.Future] = set()
