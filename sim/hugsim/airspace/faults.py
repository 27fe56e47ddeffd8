"""Faults the airspace injects on request of a control session: range (RSSI), dropped links, a link
lost around the next notify or write, latency, a band's controller out of buffers, and link events a
band's BLE stack loses on their way to the firmware (its IRQ ring full)."""

from . import wire
from .sessions import Node
from .wire import AirspaceError

FAULT_OPS = (
    "set_rssi",
    "drop_link",
    "drop_after",
    "set_latency",
    "lose_irq",
    "notify_busy",
    "set_link_limit",
)  # control requests here


class Faults:
    """Part of :class:`hugsim.airspace.server.Airspace`."""

    def _fault(self, node: Node, op: str) -> str | None:
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

    async def _fault_op(self, session, op: str, msg: dict) -> dict | None:
        """Range, dropped links, faults on the next notify or write, latency."""
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
        if op == "lose_irq":
            # the stack keeps its own connection table right; only the IRQ to Python is lost, as
            # MicroPython's event ring drops an event that does not fit (``config(rxbuf=...)``)
            node = self._node(msg["address"])
            event, n = msg.get("event", "disconnect"), int(msg.get("n", 1))
            if event not in ("connect", "disconnect", "write") or n < 1:
                raise AirspaceError("lose_irq needs event connect|disconnect|write, n >= 1")
            node.session.send({"ev": "lose_irq", "event": event, "n": n}, delayed=False)
            return None
        if op == "notify_busy":
            # the band's controller has no buffer for its next n notifications: gatts_notify fails
            # (NimBLE's ENOMEM) and the link stays up
            node = self._node(msg["address"])
            n, uuid = int(msg.get("n", 1)), msg.get("uuid")
            handles = [h for h, ch in node.chars.items() if ch["uuid"] == uuid]
            if n < 1 or (uuid is not None and not handles):
                raise AirspaceError("notify_busy needs n >= 1 and, if given, a characteristic's uuid")
            busy = {"ev": "notify_busy", "n": n, "handle": handles[0] if handles else 0}
            node.session.send(busy, delayed=False)
            return None
        if op == "set_link_limit":
            limit = int(msg["limit"])
            if limit < 1:
                raise AirspaceError("a central holds at least one link")
            if msg.get("central"):
                self.link_limits[msg["central"]] = limit
            else:
                self.link_limit = limit
            return None
        if op == "set_latency":
            self.latency_ms = max(0.0, float(msg["ms"]))
            return None
        raise AirspaceError("unknown control op %r" % op)
