"""The band's BLE peripheral on MicroPython's `bluetooth` module.

One central at a time. The IRQ handler only records events in a bounded ring and sets a
flag; the application drains them in its loop. A full ring drops command frames (counted in
``overflows``), never a connect or disconnect: a link event takes the place of the newest command.
GATT: the Hug service from hugproto, plus Battery and Device Information. Nothing on the air names
one band: the GAP name is the product's, there is no scan response, and ``new_address`` takes a
fresh non-resolvable private address (the advert's token goes with it, see ``hugband.logic``).
"""

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

_RING = const(8)  # pending events; when full a command is dropped and counted, never a link event
_FRAME = const(20)
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
        self._kinds = bytearray(_RING)
        self._conns = [0] * _RING
        self._data = [bytearray(_FRAME) for _ in range(_RING)]
        self._lens = bytearray(_RING)
        self._head = 0
        self._count = 0
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
            self._push(EV_CONNECT, data[0], None)
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
        if self._count == _RING:
            self.overflows += 1
            if kind == EV_COMMAND or not self._drop_newest_command():
                return
        i = (self._head + self._count) % _RING
        self._kinds[i] = kind
        self._conns[i] = conn
        n = 0
        if payload is not None:  # the command buffer is set to one frame, so nothing longer arrives
            n = min(len(payload), _FRAME)
            self._data[i][:n] = payload[:n]
        self._lens[i] = n
        self._count += 1
        self._flag.set()

    def _drop_newest_command(self) -> bool:
        """Free the last slot by removing the newest pending command (IRQ: allocates nothing);
        False if every pending event is a link event."""
        n = self._count
        j = n - 1
        while j >= 0 and self._kinds[(self._head + j) % _RING] != EV_COMMAND:
            j -= 1
        if j < 0:
            return False
        while j < n - 1:  # the link events behind it move up one slot
            a = (self._head + j) % _RING
            b = (self._head + j + 1) % _RING
            self._kinds[a] = self._kinds[b]
            self._conns[a] = self._conns[b]
            self._lens[a] = self._lens[b]
            j += 1
        self._count = n - 1
        return True

    def next_event(self):
        """(kind, conn, bytes or None) for the oldest pending event, or None."""
        if self._count == 0:
            return None
        i = self._head
        kind, conn, n = self._kinds[i], self._conns[i], self._lens[i]
        self._head = (self._head + 1) % _RING
        self._count -= 1
        if kind == EV_CONNECT:
            self.conn = conn
        elif kind == EV_DISCONNECT and conn == self.conn:
            self.conn = _NO_CONN
            self._ble.gatts_write(self.h_state, b"")  # the next central must not see this nonce
        if kind != EV_COMMAND:
            return kind, conn, None
        return kind, conn, bytes(self._data[i][:n])

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

    def notify_event(self, frame: bytes) -> bool:
        """Notify the Event characteristic; False if it did not go out: no link, or the link went
        before its disconnect event was drained (OSError), or the controller is out of buffers.
        Unacknowledged presses go out again on the next link, so this is not an error."""
        if self.conn == _NO_CONN:
            return False
        try:
            self._ble.gatts_notify(self.conn, self.h_event, frame)  # pyright: ignore[reportCallIssue]  (stub omits conn_handle)
        except OSError:
            self.notify_failures += 1
            return False
        return True

    def set_state(self, frame: bytes) -> None:
        """New state value; a central that subscribed before it was ready is notified."""
        self._ble.gatts_write(self.h_state, frame, True)

    def set_battery(self, percent: int, notify: bool) -> None:
        self._ble.gatts_write(self.h_battery, bytes((percent,)), notify)

    def disconnect(self, conn: int) -> None:
        self._ble.gap_disconnect(conn)
