"""The airspace's GATT relay: a band's messages (its GATT table, notifications, answers) and a
central's reads, writes and MTU exchange, carried between them over a link."""

import asyncio

from . import wire
from .sessions import Conn, Session
from .wire import (
    ATT_INVALID_HANDLE,
    ATT_READ_NOT_PERMITTED,
    ATT_WRITE_NOT_PERMITTED,
    AirspaceError,
    AirspaceTimeoutError,
    GattError,
    NotConnectedError,
)

FLAG_READ = 0x02
FLAG_WRITE_NO_RESPONSE = 0x04
FLAG_WRITE = 0x08

# NimBLE-like fixed attributes in front of the user services (see port/bluetooth.py).
GAP_NAME_HANDLE = 3
GAP_APPEARANCE_HANDLE = 5

CENTRAL_DEFAULT_MTU_PREF = 517  # what phones and BlueZ offer in an MTU exchange
PEER_REPLY_TIMEOUT_S = 5.0  # a peripheral that does not answer a read/ack in time: ATT timeout


class GattRelay:
    """Part of :class:`hugsim.airspace.server.Airspace`."""

    # ----- the band's side (fire-and-forget messages) -----

    def _peripheral_op(self, session: Session, msg: dict) -> None:
        node = session.node
        if session.role != "peripheral" or node is None:
            raise AirspaceError("not a peripheral session")
        op = msg["op"]
        if op == "reset":
            # The band's BLE stack restarted (reboot, active(False)): links vanish without a word
            # (centrals see a supervision timeout), adverts stop, the GATT table is gone.
            for conn in list(node.conns.values()):
                self._drop(conn, wire.REASON_SUPERVISION_TIMEOUT, 0, tell_peripheral=False)
            if node.advertising:
                node.interval_us = None
                self.recorder.advert(node)
            node.set_services([])
            node.air, node.addr_type = node.address, 0  # a fresh stack starts on the public address
            session.send({"ev": "reset_done"})
            self._pulse()
        elif op == "advertise":
            node.interval_us = msg["interval_us"]
            node.adv = wire.unhex_opt(msg.get("adv")) or b""
            node.resp = wire.unhex_opt(msg.get("resp")) or b""
            node.connectable = bool(msg.get("connectable", True))
            self.recorder.advert(node)
            self._announce(node)
        elif op == "set_address":
            self._set_address(node, wire.normalize_address(msg["address"]), int(msg.get("addr_type", 1)))
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

    def _set_mtu(self, conn: Conn, mtu: int) -> None:
        conn.mtu = max(wire.DEFAULT_MTU, mtu)
        self.recorder.link(conn, "mtu", mtu=conn.mtu)
        conn.node.session.send({"ev": "mtu", "conn": conn.handle, "mtu": conn.mtu})
        conn.central.send({"ev": "mtu", "address": conn.air, "mtu": conn.mtu})

    def _notify(self, conn: Conn, handle: int, value: bytes, indicate: bool) -> None:
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
        self.recorder.link(conn, "indicate" if indicate else "notify", handle=handle, value=value)
        conn.central.send(
            {
                "ev": "notify",
                "address": conn.air,
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

    def _set_address(self, node, address: str, addr_type: int) -> None:
        """The band's controller takes a new address (``config(addr_mode=...)``): its next adverts
        and links use it; links already up keep theirs."""
        if node.advertising:
            raise AirspaceError("the controller refuses a new address while advertising")
        other = self.on_air(address)
        if other is not None and other is not node:
            raise AirspaceError("address %s is already on the air" % address)
        node.air = address
        node.addr_type = addr_type
        self._pulse()

    # ----- the central's side -----

    def _conn_of(self, central: Session, address: str) -> Conn:
        address = wire.normalize_address(address)
        conn = central.conns.get(address)
        if conn is None or not conn.up:
            raise NotConnectedError("not connected to %s" % address)
        return conn

    def _conn_info(self, conn: Conn) -> dict:
        return {
            "address": conn.air,
            "conn": conn.handle,
            "mtu": conn.mtu,
            "services": conn.node.services,
        }

    async def _gatt_op(self, central, op: str, msg: dict) -> dict | None:
        """A central's reads, writes, MTU exchange and connection parameter updates."""
        if op == "read":
            conn = self._conn_of(central, msg["address"])
            handle = int(msg["handle"])
            self.recorder.link(conn, "read", handle=handle)
            value = await self._read(conn, handle)
            self.recorder.link(conn, "read_rsp", handle=handle, value=value)
            return {"value": wire.hexb(value)}
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
            self.recorder.link(conn, "conn_update", interval_ms=float(msg["interval_ms"]))
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

    async def _read(self, conn: Conn, handle: int) -> bytes:
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

    async def _write(self, conn: Conn, handle: int, value: bytes, response: bool) -> None:
        node = conn.node
        self.recorder.link(conn, "write" if response else "write_cmd", handle=handle, value=value)
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
            raise NotConnectedError("link to %s dropped before the write arrived" % conn.air)
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
                raise NotConnectedError("link to %s dropped before the write response" % conn.air)

    async def _await_peer(self, conn: Conn, fut: asyncio.Future, what: str):
        conn.pending.add(fut)
        try:
            return await asyncio.wait_for(fut, PEER_REPLY_TIMEOUT_S)
        except TimeoutError:
            raise AirspaceTimeoutError("%s: %s did not answer" % (what, conn.air)) from None
        finally:
            conn.pending.discard(fut)

    def _new_wait(self) -> tuple[int, asyncio.Future]:
        req = next(self._req_ids)
        fut = asyncio.get_running_loop().create_future()
        self._waiting[req] = fut
        fut.add_done_callback(lambda _f, r=req: self._waiting.pop(r, None))
        return req, fut
