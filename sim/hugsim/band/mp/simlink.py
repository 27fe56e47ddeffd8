"""A virtual band's outside world, on the MicroPython unix port: its airspace link and its physics.

MicroPython code (not a package module): ``bandboot.py`` starts it, ``machine``, ``bluetooth``,
``esp32`` and ``neopixel`` use it. On a real band this is silicon and NimBLE; here it costs heap
(the band's budget in its board file leaves room for it, see the README).

- The link: one TCP socket to the airspace (wire format: 4-byte big-endian length + JSON, as
  ``hugsim/airspace/wire.py``). ``serve()`` is an asyncio task: it answers GATT reads from the local
  attribute store at once (as NimBLE does, no Python IRQ), applies remote writes, keeps the live
  connections, passes link events to ``on_event`` (``bluetooth`` schedules the IRQ handler) and
  inputs (heart, touch, battery) to the physics. Sends are fire-and-forget.
- The physics: pin levels (external drive, pulls, outputs), the touch pad, the battery, the
  DRV2605L's real-time playback. A level change calls the pin's watcher (``machine.Pin.irq``).
  Outputs (motor, LED, ...) go to the airspace timeline and, with ``--print-outputs``, to stdout.
- Supervisor lines on stdout (JSON, read by ``hugsim.band.process``): ``ready``, ``wdt``/``feed``
  (the watchdog), ``sleep`` (deep sleep: wake sources), ``heap`` (live-heap high-water mark).
"""

import asyncio
import gc
import io
import json
import socket
import struct
import sys
import time

MODE_IN = 1
MODE_OUT = 3
MODE_OPEN_DRAIN = 7
PULL_DOWN = 1
PULL_UP = 2
_STATE_KINDS = ("motor", "led", "gpio", "pwm", "neopixel", "cpu_hz", "power")
_LINK_EVENTS = ("read", "write", "connect", "disconnect", "indicate_done", "mtu", "conn_update")
_HEAP_EVERY_MS = 250

board = {}
address = ""
addr_bytes = b""  # the band's identity (public) address
air_bytes = b""  # the address it is on the air with (config(addr_mode=...) changes it)
air_type = 0
reset_cause = 1
wake_reason = 0
print_outputs = False
# physics
ext = {}  # pin -> 0/1 driven from outside; absent or None: floating
pin_mode = {}
pin_pull = {}
pin_out = {}
watchers = {}  # pin -> callable(level)
_last = {}
touched = False
battery_v = 3.9
wake = {}  # deep-sleep wake sources (esp32.wake_on_*)
_current = {}
_t0 = time.ticks_ms()
heap_peak = 0
# link
connections = {}  # conn handle -> (addr_type, addr bytes)
store = {}  # value handle -> [bytes, alloc, append]
on_event = None  # bluetooth's handler: on_event(name, data)
lose = {}  # event name -> how many of the next ones the IRQ ring loses (the airspace's lose_irq fault)
notify_busy = {}  # value handle (0: any) -> how many of its next notifications find no controller buffer
_sock = None
_resetting = 0


def now_ms() -> int:
    return time.ticks_diff(time.ticks_ms(), _t0)


def line(obj) -> None:
    """A JSON line to the supervisor (stdout is unbuffered on the unix port)."""
    sys.stdout.write(json.dumps(obj) + "\n")


# -- outputs ---------------------------------------------------------------------------------------
def emit(kind: str, value, key=None) -> None:
    """Record an output; state kinds only when they change."""
    if kind in _STATE_KINDS:
        k = key if key is not None else kind
        if k in _current and _current[k] == value:
            return
        _current[k] = value
    t = now_ms()
    if type(value) is tuple:
        value = list(value)
    send({"op": "output", "kind": kind, "value": value, "t_ms": t})
    if print_outputs:
        line({"t_ms": t, "kind": kind, "value": value})


# -- pins ------------------------------------------------------------------------------------------
def level(pin: int) -> int:
    mode = pin_mode.get(pin)
    out = pin_out.get(pin, 0)
    if mode == MODE_OUT:
        return out
    if mode == MODE_OPEN_DRAIN and out == 0:
        return 0
    v = ext.get(pin)
    if v is not None:
        return v
    return 1 if pin_pull.get(pin) == PULL_UP else 0


def pin_changed(pin: int, output: bool = False) -> None:
    if output and pin_mode.get(pin) in (MODE_OUT, MODE_OPEN_DRAIN):
        out = pin_out.get(pin, 0)
        if pin == board.get("led_pin") and board.get("led_kind") == "pin":
            emit("led", out ^ (1 if board.get("led_active_low") else 0))
        elif pin == board.get("motor_pin"):
            emit("motor", float(out))
        else:
            emit("gpio", (pin, out), ("gpio", pin))
    lv = level(pin)
    if _last.get(pin) != lv:
        _last[pin] = lv
        cb = watchers.get(pin)
        if cb is not None:
            cb(lv)


def watch(pin: int, cb) -> None:
    if cb is None:
        watchers.pop(pin, None)
    else:
        watchers[pin] = cb
        _last[pin] = level(pin)


def set_pwm(pin: int, duty: int) -> None:
    if pin == board.get("motor_pin"):
        emit("motor", duty / 65535)
    elif pin == board.get("led_pin") and board.get("led_kind") == "pin":
        frac = duty / 65535
        emit("led", 1.0 - frac if board.get("led_active_low") else frac)
    else:
        emit("pwm", (pin, duty), ("pwm", pin))


def set_button(pressed: bool) -> None:
    pin = board.get("button_pin")
    if pin is None:
        return
    low = board.get("button_active_low", True)
    ext[pin] = (0 if low else 1) if pressed else None
    pin_changed(pin)


def touch_raw(pin: int) -> int:
    s3 = board.get("mcu") != "esp32"  # S2/S3: a touch raises the reading; the ESP32's drops
    idle, pressed = (25000, 60000) if s3 else (1000, 150)
    return pressed if touched and pin == board.get("touch_pin") else idle


def apply_input(name: str, value) -> None:
    global touched, battery_v
    if name == "button":
        set_button(bool(value))
    elif name == "press":
        set_button(True)
        asyncio.create_task(_release_after(int(value or 100)))
    elif name == "touch":
        touched = bool(value)
    elif name == "battery_v":
        battery_v = float(value)
    elif name == "pin":
        ext[int(value[0])] = value[1]
        pin_changed(int(value[0]))


async def _release_after(ms: int) -> None:
    await asyncio.sleep_ms(ms)
    set_button(False)


# -- the DRV2605L haptic driver (I2C 0x5A): real-time playback is what a band uses ------------------
drv_regs = bytearray(256)


def drv_reset() -> None:
    for i in range(256):
        drv_regs[i] = 0
    drv_regs[0x00] = 0xE0  # STATUS: device id
    drv_regs[0x01] = 0x40  # MODE: standby after power-up
    drv_regs[0x1D] = 0xA0  # CONTROL3


def drv_write(reg: int, data) -> None:
    for i in range(len(data)):
        r = (reg + i) & 0xFF
        v = data[i]
        if r == 0x01 and v & 0x80:
            drv_reset()
        elif r != 0x00:
            drv_regs[r] = v
    mode = drv_regs[0x01]
    lv = 0.0
    if not mode & 0x40 and mode & 7 == 5:
        rtp = drv_regs[0x02]
        if drv_regs[0x1D] & 0x08:
            lv = rtp / 255
        else:
            lv = max(0, rtp - 256 if rtp >= 128 else rtp) / 127
    emit("motor", lv)


drv_reset()


# -- the link --------------------------------------------------------------------------------------
def _frame(msg) -> bytes:
    body = json.dumps(msg).encode()
    return struct.pack(">I", len(body)) + body


class _Tx(io.IOBase):
    """The outgoing frame, encoded into one buffer taken at import. NimBLE is C with its own memory;
    this module must not ask the firmware's heap for a frame's worth of contiguous bytes per send
    (the GATT table is ~1.5 KB, and after the firmware's imports the heap's free space is in holes
    of a few hundred bytes: that failed ``gatts_register_services`` at boot)."""

    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.n = 0
        self.busy = False  # a send from a scheduled IRQ while another is encoding: that one allocates

    def write(self, s) -> int:
        k = len(s)
        if self.n + k > len(self.buf):
            raise ValueError  # too big for the buffer: the caller encodes it the allocating way
        self.mv[self.n : self.n + k] = s.encode() if type(s) is str else s
        self.n += k
        return k

    def frame(self, msg):
        """The frame in the buffer (a memoryview, valid until the next call), or None."""
        if self.busy:
            return None
        self.busy = True
        self.n = 4
        try:
            json.dump(msg, self)
        except ValueError:
            self.busy = False
            return None
        struct.pack_into(">I", self.buf, 0, self.n - 4)
        return self.mv[: self.n]


_tx = _Tx(2048)


def send(msg) -> None:
    """Fire-and-forget; never blocks for long (loopback), safe in an IRQ handler."""
    s = _sock
    if s is None:
        return
    data = _tx.frame(msg)
    if data is None:
        _send_all(s, memoryview(_frame(msg)))
        return
    try:
        _send_all(s, data)
    finally:
        _tx.busy = False


def _send_all(s, data) -> None:
    i = 0
    while i < len(data):
        try:
            n = s.send(data[i:])
        except OSError as e:
            if e.errno == 11:  # EAGAIN: the socket buffer is full; wait for room
                time.sleep_ms(1)
                continue
            return  # the airspace is gone: serve() notices
        i += n or 0


def _recv_exact(s, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError(104)
        buf += chunk
    return buf


def connect(airspace: str, addr: str) -> None:
    """Join the airspace as a peripheral (blocking, at boot). A previous life of this band may still
    be leaving the air (its process just ended): retry "busy" for a few seconds."""
    global _sock, address, addr_bytes, air_bytes
    host, _, port = airspace.rpartition(":")
    address = addr.upper()
    addr_bytes = bytes.fromhex(address.replace(":", ""))
    air_bytes = addr_bytes
    ai = socket.getaddrinfo(host or "127.0.0.1", int(port))[0][-1]
    deadline = time.ticks_add(time.ticks_ms(), 5000)
    while True:
        s = socket.socket()
        s.connect(ai)
        s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
        s.send(_frame({"id": 0, "op": "hello", "role": "peripheral", "address": address}))
        reply = json.loads(_recv_exact(s, struct.unpack(">I", _recv_exact(s, 4))[0]))
        if reply.get("ok"):
            break
        s.close()
        if reply.get("error") != "busy" or time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            raise OSError("airspace: %s" % reply.get("message"))
        time.sleep_ms(50)
    s.setblocking(False)
    _sock = s


def set_address(addr: bytes, addr_type: int) -> None:
    """The controller's new own address (``bluetooth`` checks it is not advertising)."""
    global air_bytes, air_type
    air_bytes = bytes(addr)
    air_type = addr_type
    send({"op": "set_address", "address": ":".join("%02X" % b for b in air_bytes), "addr_type": addr_type})


def reset() -> None:
    """The BLE stack restarts (``active(False)``): links dropped, advertising stopped, table gone."""
    global _resetting, air_bytes, air_type
    _resetting += 1
    air_bytes = addr_bytes  # a fresh stack starts on the public address
    air_type = 0
    connections.clear()
    store.clear()
    send({"op": "reset"})


def _event(name: str, data) -> None:
    if on_event is not None:
        on_event(name, data)


def _remote_write(handle: int, data) -> None:
    a = store.get(handle)
    if a is None:
        return
    offset = len(a[0]) if a[2] else 0
    a[0] = (a[0][:offset] + data)[: a[1]]


def _handle(msg) -> None:
    global _resetting
    ev = msg.get("ev")
    if ev == "input":
        apply_input(msg["name"], msg.get("value"))
    elif ev == "lose_irq":
        lose[msg["event"]] = lose.get(msg["event"], 0) + int(msg["n"])
    elif ev == "notify_busy":
        notify_busy[msg["handle"]] = notify_busy.get(msg["handle"], 0) + int(msg["n"])
    elif ev == "reset_done":
        _resetting = max(0, _resetting - 1)
    elif _resetting and ev in _LINK_EVENTS:
        if ev == "read":
            send({"op": "read_rsp", "req": msg["req"], "att": 0x0E})
    elif ev == "read":
        a = store.get(msg["handle"])
        if a is None:
            send({"op": "read_rsp", "req": msg["req"], "att": 0x01})
        else:
            send({"op": "read_rsp", "req": msg["req"], "value": a[0].hex()})
    elif ev == "write":
        _remote_write(msg["handle"], bytes.fromhex(msg["value"]))
        if "req" in msg:
            send({"op": "write_ack", "req": msg["req"]})
        _event("write", msg)
    elif ev == "connect":
        connections[msg["conn"]] = (msg["addr_type"], bytes.fromhex(msg["addr"]))
        _event("connect", msg)
    elif ev == "disconnect":
        connections.pop(msg["conn"], None)
        _event("disconnect", msg)
    elif ev in ("indicate_done", "mtu", "conn_update"):
        _event(ev, msg)
    elif ev == "error":
        print("airspace:", msg.get("message"))


async def serve() -> None:
    """The radio controller: read the airspace until it goes away."""
    reader = asyncio.StreamReader(_sock)
    try:
        while True:
            header = await reader.readexactly(4)
            body = await reader.readexactly(struct.unpack(">I", header)[0])
            try:
                _handle(json.loads(body))
            except (KeyError, TypeError, ValueError) as e:
                print("airspace: bad message:", repr(e))
    except (EOFError, OSError):
        pass
    for conn in list(connections):  # the airspace is gone, and every link with it
        addr_type, addr = connections.pop(conn)
        _event("disconnect", {"conn": conn, "addr_type": addr_type, "addr": addr.hex(), "reason": 8})


def sample_heap() -> None:
    """Live heap (after a collection) high-water mark, reported when it grows."""
    global heap_peak
    gc.collect()
    live = gc.mem_alloc()
    if live > heap_peak:
        heap_peak = live
        line({"heap": live})


_probed = False


def probe_plays() -> None:
    """A logic analyser on the haptic player: every Play that starts playing (not merely queued) is
    recorded as a ("play", token) output, so a test counts buzzes per Play token across reboots. It is
    recorded when the shell keeps the token in flash (the A_PLAYING action), which it does right after
    driving the motor that starts it: a band that loses power before then never buzzed it, and plays it
    when it is resent. Installed once the firmware has imported hugband.logic (before its loop's first
    step)."""
    global _probed
    mod = sys.modules.get("hugband.logic")
    if _probed or mod is None:
        return
    _probed = True
    logic = mod.BandLogic
    save = logic.save_played

    def probed_save(core, token):
        save(core, token)
        emit("play", token)

    logic.save_played = probed_save


async def heap_sampler() -> None:
    while True:
        probe_plays()
        sample_heap()
        await asyncio.sleep_ms(_HEAP_EVERY_MS)
