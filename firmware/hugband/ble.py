"""The band's BLE peripheral on MicroPython's `bluetooth` module.

One central at a time. The IRQ handler only records events in a bounded ring and sets a flag; the
application drains them in its loop. Commands may fill at most half the ring (``overflows`` counts the
ones dropped); the other half is kept for connects and disconnects, more than can come between two
loop steps (a connect stops advertising, so one new link per step, plus the disconnects of NimBLE's
links: 4 at most in MicroPython's ESP32 build, CONFIG_BT_NIMBLE_MAX_CONNECTIONS). The BLE stack itself
may still lose an IRQ (its own ring full): the shell reconciles with it (``alive``, ``disconnect``),
and a link found gone is reported as a disconnect like any other.
GATT: the Hug service from hugproto, plus Battery and Device Information. Nothing on the air names
one band: the GAP name is the product's, there is no scan response, and ``new_address`` takes a
fresh non-resolvable private address (the advert's token goes with it, see ``hugband.logic``).
"""

import errno

import bluetooth
from micropython import const

from hugproto import frames, gatt
from hugproto.errors import ProtocolError

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)

EV_CONNECT = const(1)
EV_DISCONNECT = const(2)
EV_COMMAND = const(3)

_RING = const(16)  # pending events
_COMMANDS = const(8)  # of which commands at most: the rest is for link events
_FRAME = const(20)
_ADDR = const(6)
_WRITE_BUFFER = const(80)  # writes arriving before the IRQ reads them queue up here
_NO_CONN = const(-1)
_ADDR_NRPA = const(3)  # config(addr_mode=): a fresh non-resolvable private address per call
GAP_NAME = "Hug Button"  # the GAP device name any central can read: the same on every band

_F_READ = const(0x0002)
_F_WRITE = const(0x0008)
_F_NOTIFY = const(0x0010)


class Peripheral:
    """Advertising, the GATT table and one connection, with IRQs turned into events."""

    def __init__(self, ble, model: str, firmware_version: str, flag) -> None:
        self._ble = ble
        self._flag = flag
        self.conn = _NO_CONN
        self.overflows = 0
        self.notify_failures = 0
        self.link_events_lost = 0  # only if links come and go faster than any stack allows
        self.links_found_gone = 0  # links the stack no longer had, its disconnect IRQ lost
        self._kinds = bytearray(_RING)
        self._conns = [0] * _RING
        self._data = [bytearray(_FRAME) for _ in range(_RING)]
        self._lens = bytearray(_RING)
        self._addrs = bytearray(_RING * _ADDR)
        self._head = 0
        self._count = 0
        self._commands = 0
        self._gone = []  # links found gone (main loop only, never the IRQ): reported first
        self.addr = bytearray(_ADDR)  # the central's address of the last connect next_event returned
        ble.active(True)
        ble.config(gap_name=GAP_NAME)
        ble.irq(self._irq)
        hug = (
            bluetooth.UUID(gatt.HUG_SERVICE_UUID),
            (
                (bluetooth.UUID(gatt.EVENT_CHAR_UUID), _F_READ | _F_NOTIFY),
                (bluetooth.UUID(gatt.COMMAND_CHAR_UUID), _F_WRITE),
                (bluetooth.UUID(gatt.STATE_CHAR_UUID), _F_READ | _F_NOTIFY),
            ),
        )
        battery = (
            bluetooth.UUID(gatt.BATTERY_SERVICE_UUID),
            ((bluetooth.UUID(gatt.BATTERY_LEVEL_UUID), _F_READ | _F_NOTIFY),),
        )
        info = (
            bluetooth.UUID(gatt.DEVICE_INFO_SERVICE_UUID),
            (
                (bluetooth.UUID(gatt.MANUFACTURER_NAME_UUID), _F_READ),
                (bluetooth.UUID(gatt.MODEL_NUMBER_UUID), _F_READ),
                (bluetooth.UUID(gatt.FIRMWARE_REVISION_UUID), _F_READ),
            ),
        )
        handles = ble.gatts_register_services((hug, battery, info))
        self.h_event, self.h_command, self.h_state = handles[0]
        self.h_battery = handles[1][0]
        ble.gatts_set_buffer(self.h_command, _WRITE_BUFFER, True)
        ble.gatts_write(handles[2][0], gatt.MANUFACTURER_NAME.encode())
        ble.gatts_write(handles[2][1], model.encode())
        ble.gatts_write(handles[2][2], firmware_version.encode())

    def _irq(self, event, data) -> None:
        if event == _IRQ_CENTRAL_CONNECT:
            self._push(EV_CONNECT, data[0], data[2])
        elif event == _IRQ_CENTRAL_DISCONNECT:
            self._push(EV_DISCONNECT, data[0], None)
        elif event == _IRQ_GATTS_WRITE:
            conn, handle = data[0], data[1]
            if handle == self.h_command:
                self._split_commands(conn, self._ble.gatts_read(handle))

    def _split_commands(self, conn: int, data) -> None:
        """Appended writes: cut them into frames by their headers; garbage goes on whole."""
        i = 0
        while i < len(data):
            try:
                n = frames.frame_length(data[i])
            except ProtocolError:
                n = len(data) - i
            self._push(EV_COMMAND, conn, data[i : i + n])
            i += n

    def _push(self, kind: int, conn: int, payload) -> None:
        """Queue an event (IRQ context: allocates nothing). A connect's payload is the central's
        address (copied: the stack reuses its buffer), a command's the frame."""
        if self._count == _RING or (kind == EV_COMMAND and self._commands == _COMMANDS):
            if kind == EV_COMMAND:
                self.overflows += 1
            else:
                self.link_events_lost += 1  # the shell's next check with the stack recovers
            return
        i = (self._head + self._count) % _RING
        self._kinds[i] = kind
        self._conns[i] = conn
        n = 0
        if kind == EV_CONNECT:
            a = i * _ADDR
            for j in range(_ADDR):
                self._addrs[a + j] = payload[j] if j < len(payload) else 0
        elif payload is not None:  # the command buffer is set to one frame, so nothing longer arrives
            n = min(len(payload), _FRAME)
            self._data[i][:n] = payload[:n]
            self._commands += 1
        self._lens[i] = n
        self._count += 1
        self._flag.set()

    def next_event(self):
        """(kind, conn, bytes or None) for the oldest pending event, or None. For a connect,
        ``addr`` holds the central's address until the next call."""
        if self._gone:
            conn = self._gone.pop(0)
            self._link_gone(conn)
            return EV_DISCONNECT, conn, None
        if self._count == 0:
            return None
        i = self._head
        kind, conn, n = self._kinds[i], self._conns[i], self._lens[i]
        self._head = (self._head + 1) % _RING
        self._count -= 1
        if kind == EV_CONNECT:
            self.conn = conn
            a = i * _ADDR
            self.addr[:] = self._addrs[a : a + _ADDR]
        elif kind == EV_DISCONNECT:
            self._link_gone(conn)
        if kind != EV_COMMAND:
            return kind, conn, None
        self._commands -= 1
        return kind, conn, bytes(self._data[i][:n])

    def _link_gone(self, conn: int) -> None:
        if conn == self.conn:
            self.conn = _NO_CONN
            self._ble.gatts_write(self.h_state, b"")  # the next central must not see this nonce

    def _found_gone(self, conn: int) -> None:
        """The stack has no such link: report its disconnect (its IRQ was lost) once."""
        if conn not in self._gone:
            self.links_found_gone += 1
            self._gone.append(conn)
            self._flag.set()

    def alive(self, conn: int) -> bool:
        """Ask the stack whether ``conn`` is still a link, by notifying the battery level (a
        standard value any central may ignore). A link it no longer has is reported gone."""
        try:
            self._ble.gatts_notify(conn, self.h_battery)  # pyright: ignore[reportCallIssue]  (stub omits conn_handle)
        except OSError as e:
            if e.args[0] != errno.ENOTCONN:
                return True  # out of buffers, say: the link is there
            self._found_gone(conn)
            return False
        return True

    def advertise(self, interval_ms: int, payload: bytes) -> None:
        """Advertise `payload` every interval_ms, or stop when interval_ms is 0."""
        if interval_ms <= 0:
            self._ble.gap_advertise(None)  # pyright: ignore[reportArgumentType]  (None stops, per the docs)
            return
        self._ble.gap_advertise(interval_ms * 1000, payload, resp_data=b"")

    def new_address(self) -> bytes:
        """Stop advertising and take a fresh random private address (NimBLE draws one per call);
        returns the address in use, most significant byte first."""
        self._ble.gap_advertise(None)  # pyright: ignore[reportArgumentType]  (None stops, per the docs)
        try:
            self._ble.config(addr_mode=_ADDR_NRPA)
        except OSError:  # the controller kept its address: the token is made for the one in use
            pass
        return bytes(self._ble.config("mac")[1])

    def notify_event(self, conn: int, frame: bytes) -> bool:
        """Notify the Event characteristic to ``conn``; False if it did not go out: the link went
        before its disconnect event was drained (OSError ENOTCONN: reported gone), or the
        controller is out of buffers. Unacknowledged presses go out again on the next link, so
        this is not an error."""
        try:
            self._ble.gatts_notify(conn, self.h_event, frame)  # pyright: ignore[reportCallIssue]  (stub omits conn_handle)
        except OSError as e:
            self.notify_failures += 1
            if e.args[0] == errno.ENOTCONN:
                self._found_gone(conn)
            return False
        return True

    def set_state(self, frame: bytes) -> None:
        """New state value; a central that subscribed before it was ready is notified."""
        self._ble.gatts_write(self.h_state, frame, True)

    def set_battery(self, percent: int, notify: bool) -> None:
        self._ble.gatts_write(self.h_battery, bytes((percent,)), notify)

    def disconnect(self, conn: int) -> None:
        """Drop a link; one the stack no longer has is reported gone (its disconnect IRQ was lost)."""
        try:
            if self._ble.gap_disconnect(conn):
                return
        except OSError as e:  # EALREADY: a disconnect is under way; the check asks again later
            if e.args[0] != errno.ENOTCONN:
                return
        self._found_gone(conn)
