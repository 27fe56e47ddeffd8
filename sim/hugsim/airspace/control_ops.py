"""The airspace's answers to control sessions (``control.py`` is their client): presses, the bands'
output timelines, the list of nodes. Faults are in ``faults.py``."""

import asyncio

from . import wire
from .sessions import Node
from .wire import AirspaceError, NotFoundError


class ControlOps:
    """Part of :class:`hugsim.airspace.server.Airspace`."""

    def _node(self, address: str) -> Node:
        address = wire.normalize_address(address)
        node = self.nodes.get(address)
        if node is None:
            raise NotFoundError("no band %s on the air" % address)
        return node

    async def _control_op(self, session, op: str, msg: dict) -> dict | None:
        """Presses, output timelines, the list of nodes and the recording."""
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
            # the band may have rebooted meanwhile (a press woke it): the finger leaves the new one
            node = self.nodes.get(node.address, node)
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
        if op == "list_nodes":
            return {"nodes": [self._node_info(n) for n in self.nodes.values()]}
        if op == "recording":
            entries = self.recorder.entries(float(msg.get("since_ms") or 0.0), bool(msg.get("truth")))
            return {"entries": entries, "dropped": self.recorder.dropped}
        if op == "clear_recording":
            self.recorder.clear()
            return None
        if op == "watch":
            session.watching = True
            return {"nodes": [n.address for n in self.nodes.values()], "t_ms": self.now_ms()}
        raise AirspaceError("unknown control op %r" % op)

    def _record(self, node: Node, kind: str, value: object, band_t_ms: object) -> None:
        """A band's physical output (motor, LED, ...) or a notification it put on the air
        (``notify``, value = the characteristic's UUID), on its timeline in airspace time."""
        entry = [self.now_ms(), kind, value, band_t_ms]
        self.timelines.setdefault(node.address, []).append(entry)
        for w in self._watchers():
            w.send({"ev": "output", "address": node.address, "entry": entry})

    def _node_info(self, node: Node) -> dict:
        return {
            "address": node.address,
            "air_address": node.air,
            "addr_type": node.addr_type,
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
