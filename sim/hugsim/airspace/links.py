"""The airspace's link layer: adverts and scanning, connecting, and links that drop (a request, a
reset, range, a session that goes away)."""

import asyncio

from . import wire
from .sessions import Conn, Node, Session
from .wire import AirspaceError, AirspaceTimeoutError, LinkLimitError, NotConnectedError

SCAN_REPORT_MIN_S = 0.1
SCAN_REPORT_MAX_S = 1.0
LINK_OPS = ("scan_start", "scan_stop", "connect", "disconnect")  # a central's requests handled here


class Links:
    """Part of :class:`hugsim.airspace.server.Airspace`."""

    def on_air(self, address: str) -> Node | None:
        """The node on the air with ``address`` now (what a central can reach), if any."""
        for node in self.nodes.values():
            if node.air == address:
                return node
        return None

    def _adv_event(self, node: Node, central: Session) -> dict:
        resp = node.resp if (central.active_scan and node.resp) else None
        return {
            "ev": "adv",
            "address": node.air,
            "addr_type": node.addr_type,
            "rssi": self.rssi_for(node.address, central.name),
            "adv": wire.hexb(node.adv),
            "resp": None if resp is None else wire.hexb(resp),
            "connectable": node.connectable,
        }

    def _announce(self, node: Node) -> None:
        """Adverts changed (or a node came into range): tell scanners at once, wake connectors."""
        for c in self._centrals():
            if c.scanning and node.advertising and self.visible(node.address, c.name):
                c.send(self._adv_event(node, c))
                c.adv_due[node.air] = asyncio.get_running_loop().time() + self._report_period(node)
        self._pulse()

    @staticmethod
    def _report_period(node: Node) -> float:
        return min(SCAN_REPORT_MAX_S, max(SCAN_REPORT_MIN_S, (node.interval_us or 0) / 1e6))

    async def _scan_loop(self, central: Session) -> None:
        loop = asyncio.get_running_loop()
        while central.scanning and not central.closed:
            now = loop.time()
            next_due = now + SCAN_REPORT_MAX_S
            for node in list(self.nodes.values()):
                if not node.advertising or not self.visible(node.address, central.name):
                    continue
                due = central.adv_due.get(node.air, 0.0)
                if now >= due:
                    central.send(self._adv_event(node, central))
                    due = now + self._report_period(node)
                    central.adv_due[node.air] = due
                next_due = min(next_due, due)
            await asyncio.sleep(max(0.01, next_due - now))

    async def _link_op(self, central, op: str, msg: dict) -> dict | None:
        """A central's scan, connect and disconnect requests."""
        loop = asyncio.get_running_loop()
        if op == "scan_start":
            central.active_scan = bool(msg.get("active", True))
            central.adv_due.clear()
            central.scanning = True
            for node in list(self.nodes.values()):
                if node.advertising and self.visible(node.address, central.name):
                    central.send(self._adv_event(node, central))
                    central.adv_due[node.air] = loop.time() + self._report_period(node)
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
            self._check_link_limit(central)
            deadline = loop.time() + float(msg.get("timeout_ms", 10000)) / 1000.0
            while True:
                node = self.on_air(address)
                if (
                    node is not None
                    and node.advertising
                    and node.connectable
                    and self.visible(node.address, central.name)
                ):
                    break
                if not await self._wait_change(deadline):
                    raise AirspaceTimeoutError("%s is not advertising connectably in range" % address)
                if central.closed:
                    raise NotConnectedError("central went away")
            self._check_link_limit(central)  # another connect may have completed meanwhile
            conn = Conn(node, central, node.new_handle())
            node.conns[conn.handle] = conn
            central.conns[address] = conn
            node.interval_us = None  # a connection stops connectable advertising, as on NimBLE
            self.recorder.link(conn, "connect")
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
        raise AirspaceError("unknown central op %r" % op)

    def _check_link_limit(self, central: Session) -> None:
        limit = self.link_limits.get(central.name or "", self.link_limit)
        held = sum(1 for c in central.conns.values() if c.up)
        if held >= limit:
            raise LinkLimitError("%s holds %d links, as many as its radio allows" % (central.name, held))

    def _drop(
        self, conn: Conn, reason_central: int, reason_peripheral: int, *, tell_peripheral: bool = True
    ) -> None:
        if not conn.up:
            return
        conn.up = False
        node, central = conn.node, conn.central
        if node.conns.get(conn.handle) is conn:
            del node.conns[conn.handle]
        if central.conns.get(conn.air) is conn:
            del central.conns[conn.air]
        for fut in list(conn.pending):
            if not fut.done():
                fut.set_exception(NotConnectedError("link to %s dropped" % conn.air))
        self.recorder.link(conn, "disconnect", reason=reason_central)
        central.send({"ev": "disconnected", "address": conn.air, "reason": reason_central})
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
