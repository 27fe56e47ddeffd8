"""The physical state of one virtual band: what the firmware can sense and what it drives.

Inputs are set from outside (tests, the radio bridge, the runner's control channel):
``press()``/``release()``/``set_button()``, ``set_touch()``, ``battery_v``, ``set_analog()``,
``drive()`` for any pin. Outputs the firmware produces are appended to ``timeline`` as
``(t_ms, kind, value)`` and passed to listeners ``callback(kind, value, t_ms)``:

=============  ===================================================================================
kind           value
=============  ===================================================================================
``motor``      intensity felt, float 0.0-1.0 (PWM duty on ``motor_pin``, a plain GPIO on it, or the
               DRV2605L's real-time-playback level)
``haptic``     DRV2605L library playback started (GO): ``{"effects": [ids...], "library": n}``
``led``        ``led_kind`` "pin": 0/1 lit (after ``led_active_low``); PWM on the LED pin: float
               brightness 0.0-1.0; "neopixel": ``(r, g, b)`` of pixel 0 (a tuple of tuples if
               ``led_count`` > 1), as latched by ``NeoPixel.write()``
``gpio``       ``(pin, level)`` for any other output pin
``pwm``        ``(pin, duty_u16)`` for PWM on any other pin
``neopixel``   ``(pin, pixels)`` for a strip on any other pin
``cpu_hz``     CPU clock set by ``machine.freq(hz)`` (and the default at every boot)
``power``      "active", "lightsleep", "deepsleep", "halted" (firmware ended, REPL), "off"
``boot``       ``{"reset_cause": n, "wake_reason": n, "boot": k}`` at every (re)start
``crash``      ``"ExcType: message"`` when the firmware entry raised
=============  ===================================================================================

State kinds (motor, led, gpio, pwm, neopixel, cpu_hz, power) are recorded only when they change;
event kinds (haptic, boot, crash) always. ``t_ms`` is milliseconds since the World was created (it
does not restart at reboots, unlike ``time.ticks_ms()``). The timeline keeps the last
``timeline_max`` entries.

Pin levels: an input reads the external drive (``drive(pin, 0/1)``) or, when nothing drives it
(``drive(pin, None)``), its pull resistor (PULL_UP -> 1, PULL_DOWN -> 0, none -> 0). A button wired to
ground (``button_active_low``) therefore reads 1 when released only if the firmware enabled the
pull-up, unless the board declares ``button_external_pull``. Pin modes/pulls/output levels live here
(they are physical); they return to power-on defaults at every reset.

Thread safety: every method may be called from any thread. Pin IRQ watchers run in the thread that
changed the level (see ``machine.Pin.irq`` for how handlers are then delivered).
"""

import threading
import time
from collections import deque

# pin modes/pulls: MicroPython esp32 values (machine.Pin.IN/OUT/OPEN_DRAIN, PULL_UP/PULL_DOWN)
MODE_IN = 1
MODE_OUT = 3
MODE_OPEN_DRAIN = 7
PULL_DOWN = 1
PULL_UP = 2

# reset causes (machine.reset_cause()), set by the runner at each boot
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
# ESP-IDF esp_sleep_wakeup_cause_t values, returned by machine.wake_reason() on the band
WAKE_UNDEFINED = 0
WAKE_EXT0 = 2
WAKE_EXT1 = 3
WAKE_TIMER = 4
WAKE_TOUCHPAD = 5
WAKE_GPIO = 7

_STATE_KINDS = ("motor", "led", "gpio", "pwm", "neopixel", "cpu_hz", "power")

DRV2605L_ADDR = 0x5A

# chip facts the port needs
CHIPS = {
    "esp32": {
        "pins": [p for p in range(40) if p not in (20, 24, 28, 29, 30, 31)],
        "input_only": (34, 35, 36, 37, 38, 39),
        "touch_pins": (0, 2, 4, 12, 13, 14, 15, 27, 32, 33),
        "touch_idle": 1000,
        "touch_pressed": 150,  # ESP32: reading drops when touched
        "freqs": (20, 40, 80, 160, 240),
        "adc_max_mv": (950, 1250, 1750, 2450),
    },
    "esp32s3": {
        "pins": list(range(22)) + list(range(26, 49)),
        "input_only": (),
        "touch_pins": tuple(range(1, 15)),
        "touch_idle": 25000,
        "touch_pressed": 60000,  # S2/S3: reading rises when touched
        "freqs": (20, 40, 80, 160, 240),
        "adc_max_mv": (950, 1250, 1750, 3100),
    },
    "esp32c3": {
        "pins": list(range(22)),
        "input_only": (),
        "touch_pins": (),  # no touch sensor
        "touch_idle": 0,
        "touch_pressed": 0,
        "freqs": (10, 20, 40, 80, 160),
        "adc_max_mv": (750, 1050, 1300, 2500),
    },
}


def _run(todo) -> None:
    for thunk in todo:
        thunk()


class Board:
    """A board description (``firmware/hugband/boards/NAME.json``) with defaults for missing keys.

    Keys read: name, mcu, button_pin, button_active_low, button_external_pull, touch_pin,
    touch_idle_raw, touch_pressed_raw, motor_pin, motor_driver ("erm_pwm" | "drv2605l" | "gpio"),
    i2c {"id", "scl", "sda"}, drv2605l_addr, led_pin, led_kind ("pin" | "neopixel"), led_active_low,
    led_count, battery_adc_pin, battery_divider. Unknown keys are kept in ``raw``.
    """

    def __init__(self, data=None) -> None:
        d = dict(data or {})
        self.raw = d
        self.name = d.get("name") or "generic"
        chip = d.get("mcu")
        if not chip:
            low = self.name.lower()
            chip = "esp32c3" if "c3" in low else "esp32s3" if "s3" in low else "esp32"
        chip = str(chip).lower().replace("-", "")
        if chip not in CHIPS:
            raise ValueError("unknown chip %r (known: %s)" % (chip, ", ".join(CHIPS)))
        self.chip = chip
        self.button_pin = d.get("button_pin")
        self.button_active_low = bool(d.get("button_active_low", True))
        self.button_external_pull = bool(d.get("button_external_pull", False))
        self.touch_pin = d.get("touch_pin")
        self.touch_idle_raw = int(d.get("touch_idle_raw", CHIPS[chip]["touch_idle"]))
        self.touch_pressed_raw = int(d.get("touch_pressed_raw", CHIPS[chip]["touch_pressed"]))
        self.motor_pin = d.get("motor_pin")
        self.motor_driver = d.get("motor_driver") or "erm_pwm"
        self.i2c = dict(d.get("i2c") or {})
        self.drv2605l_addr = int(d.get("drv2605l_addr", DRV2605L_ADDR))
        self.led_pin = d.get("led_pin")
        self.led_kind = d.get("led_kind") or "pin"
        self.led_active_low = bool(d.get("led_active_low", False))
        self.led_count = int(d.get("led_count", 1))
        self.battery_adc_pin = d.get("battery_adc_pin")
        self.battery_divider = float(d.get("battery_divider", 2.0))

    @property
    def chip_info(self) -> dict:
        return CHIPS[self.chip]


class DRV2605L:
    """Register-level model of a TI DRV2605L haptic driver on I2C (enough for RTP and library play).

    Registers: 0x00 STATUS (reads DEVICE_ID 7 << 5), 0x01 MODE (bit7 DEV_RESET, bit6 STANDBY,
    bits2:0 mode; 5 = real-time playback), 0x02 RTP_INPUT, 0x03 LIBRARY_SEL, 0x04-0x0B waveform
    sequence, 0x0C GO, 0x1D CONTROL3 (bit3: RTP data unsigned). Writes auto-increment the register
    address. Every write is kept in ``writes`` as ``(t_ms, reg, value)``.
    """

    STATUS, MODE, RTP, LIBRARY, SEQ0, GO, CONTROL3 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x0C, 0x1D
    EFFECT_MS = 100  # assumed length of one library effect (the real ones are 10-1000 ms)

    def __init__(self, world: "World") -> None:
        self._world = world
        self.writes = []
        self._power_on()

    def _power_on(self) -> None:
        self.regs = bytearray(256)
        self.regs[self.STATUS] = 0xE0
        self.regs[self.MODE] = 0x40  # standby after power-up
        self.regs[self.CONTROL3] = 0xA0
        self.ptr = 0
        self._go_until = 0.0

    def write(self, reg: int, data: bytes) -> None:
        for i, b in enumerate(bytes(data)):
            self._write1((reg + i) & 0xFF, b)

    def _write1(self, reg: int, v: int) -> None:
        self.writes.append((self._world.now_ms(), reg, v))
        if reg == self.STATUS:
            return  # read-only
        if reg == self.MODE and v & 0x80:
            self._power_on()
            self._update_motor()
            return
        self.regs[reg] = v
        if reg == self.GO:
            if v & 1 and not self.regs[self.MODE] & 0x40 and self.regs[self.MODE] & 7 == 0:
                effects = []
                ms = 0
                for r in range(self.SEQ0, self.SEQ0 + 8):
                    e = self.regs[r]
                    if e == 0:
                        break
                    effects.append(e)
                    ms += (e & 0x7F) * 10 if e & 0x80 else self.EFFECT_MS
                self._go_until = time.monotonic() + ms / 1000.0
                self._world.emit("haptic", {"effects": effects, "library": self.regs[self.LIBRARY] & 7})
            else:
                self.regs[self.GO] = 0
                self._go_until = 0.0
        self._update_motor()

    def read(self, reg: int, n: int) -> bytes:
        if self.regs[self.GO] & 1 and time.monotonic() >= self._go_until:
            self.regs[self.GO] = 0  # playback finished: GO self-clears
        return bytes(self.regs[(reg + i) & 0xFF] for i in range(n))

    def _update_motor(self) -> None:
        mode = self.regs[self.MODE]
        level = 0.0
        if not mode & 0x40 and mode & 7 == 5:
            rtp = self.regs[self.RTP]
            if self.regs[self.CONTROL3] & 0x08:
                level = rtp / 255.0
            else:
                signed = rtp - 256 if rtp >= 128 else rtp
                level = max(0, signed) / 127.0
        self._world.emit("motor", level)


class World:
    """One band's physics. See the module docstring."""

    def __init__(
        self,
        board=None,
        *,
        address: str = "C0:FF:EE:00:00:01",
        battery_v: float = 3.9,
        battery_drain_v_per_h: float = 0.0,
        state_dir=None,
        timeline_max: int = 100000,
    ) -> None:
        self.board = board if isinstance(board, Board) else Board(board)
        self.address = address.upper()
        self.state_dir = state_dir
        self._battery_v = float(battery_v)
        self._battery_t = time.monotonic()
        self.battery_drain_v_per_h = float(battery_drain_v_per_h)
        self._t0 = time.monotonic()
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self.timeline = deque(maxlen=timeline_max)
        self._listeners = []
        self._current = {}
        # pins
        self._ext = {}  # pin -> 0/1 externally driven, None/absent = floating
        self.pin_mode = {}
        self.pin_pull = {}
        self.pin_out = {}
        self._watchers = {}  # pin -> list of callables(level), plus last level
        self._last_level = {}
        self._analog = {}
        self.touched = False
        self.touch_threshold = {}
        # wake sources (esp32.wake_on_*, Pin.irq(wake=...)); cleared at boot
        self.wake = {}
        self.rtc_memory = b""
        self.boots = []
        self.i2c_devices = {}
        if self.board.motor_driver == "drv2605l":
            self.i2c_devices[self.board.drv2605l_addr] = DRV2605L(self)
        self.release()

    # -- time ----------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    # -- outputs -------------------------------------------------------------------------------
    def add_listener(self, callback) -> None:
        """``callback(kind, value, t_ms)`` for every recorded output, in the emitting thread."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def emit(self, kind: str, value, key=None) -> bool:
        """Record an output. State kinds are recorded only on change (per ``key``, default kind)."""
        with self._lock:
            if kind in _STATE_KINDS:
                k = key if key is not None else kind
                if k in self._current and self._current[k] == value:
                    return False
                self._current[k] = value
            t = self.now_ms()
            self.timeline.append((t, kind, value))
            listeners = list(self._listeners)
            self._cond.notify_all()
        for cb in listeners:
            try:
                cb(kind, value, t)
            except Exception as exc:  # noqa: BLE001 - a broken listener must not break the band
                print("hugsim: output listener failed: %r" % (exc,))
        return True

    def current(self, kind: str, default=None):
        """The latest value of a state kind (e.g. ``current("motor")``)."""
        with self._lock:
            return self._current.get(kind, default)

    def outputs(self, kind: str, since_ms: int = 0) -> list:
        """``[(t_ms, value), ...]`` of one kind, oldest first."""
        with self._lock:
            return [(t, v) for (t, k, v) in self.timeline if k == kind and t >= since_ms]

    def wait_for(self, kind: str, predicate=None, timeout: float = 5.0, since_ms: int = 0):
        """Wait until an output of ``kind`` with ``predicate(value)`` true is recorded at or after
        ``since_ms``; return ``(t_ms, value)``, or raise ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, k, v in self.timeline:
                    if k == kind and t >= since_ms and (predicate is None or predicate(v)):
                        return t, v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no %s output matching within %.1f s" % (kind, timeout))
                self._cond.wait(left)

    # -- pins: configuration (from machine.Pin) ------------------------------------------------
    def configure_pin(self, pin: int, mode=None, pull=-1, value=None) -> None:
        with self._lock:
            if mode is not None:
                self.pin_mode[pin] = mode
            if pull != -1:
                self.pin_pull[pin] = pull
            if value is not None:
                self.pin_out[pin] = 1 if value else 0
            todo = self._after_pin_change(pin, output=True)
        _run(todo)

    def set_output(self, pin: int, value) -> None:
        with self._lock:
            self.pin_out[pin] = 1 if value else 0
            todo = self._after_pin_change(pin, output=True)
        _run(todo)

    def level(self, pin: int) -> int:
        """The electrical level the firmware reads on ``pin``."""
        with self._lock:
            mode = self.pin_mode.get(pin)
            out = self.pin_out.get(pin, 0)
            if mode == MODE_OUT:
                return out
            if mode == MODE_OPEN_DRAIN and out == 0:
                return 0
            ext = self._ext.get(pin)
            if ext is not None:
                return ext
            pull = self.pin_pull.get(pin)
            if pull == PULL_UP:
                return 1
            return 0

    def watch(self, pin: int, callback) -> None:
        """Call ``callback(level)`` whenever the level of ``pin`` changes (used by Pin.irq)."""
        with self._lock:
            self._watchers.setdefault(pin, []).append(callback)
            self._last_level[pin] = self.level(pin)

    def unwatch(self, pin: int, callback) -> None:
        with self._lock:
            lst = self._watchers.get(pin, [])
            if callback in lst:
                lst.remove(callback)

    def _after_pin_change(self, pin: int, output: bool = False) -> list:
        """Under the lock: work out what a pin change causes; returns thunks to run unlocked."""
        todo = []
        level = self.level(pin)
        if output and self.pin_mode.get(pin) in (MODE_OUT, MODE_OPEN_DRAIN):
            todo.append(self._digital_output(pin, self.pin_out.get(pin, 0)))
        self._cond.notify_all()
        watchers = self._watchers.get(pin)
        changed = self._last_level.get(pin) != level
        self._last_level[pin] = level
        if watchers and changed:
            todo.extend((lambda cb=cb: cb(level)) for cb in list(watchers))
        return todo

    def _digital_output(self, pin: int, out: int):
        b = self.board
        if pin == b.led_pin and b.led_kind == "pin":
            return lambda: self.emit("led", out ^ (1 if b.led_active_low else 0))
        if pin == b.motor_pin:
            return lambda: self.emit("motor", float(out))
        return lambda: self.emit("gpio", (pin, out), key=("gpio", pin))

    # -- pins: the outside world ---------------------------------------------------------------
    def drive(self, pin: int, level) -> None:
        """Drive ``pin`` from outside to 0/1, or release it (None: floating, pulls decide)."""
        with self._lock:
            self._ext[pin] = None if level is None else (1 if level else 0)
            todo = self._after_pin_change(pin)
        _run(todo)

    def set_button(self, pressed: bool) -> None:
        b = self.board
        if b.button_pin is None:
            raise ValueError("board %s has no button_pin" % b.name)
        if pressed:
            self.drive(b.button_pin, 0 if b.button_active_low else 1)
        elif b.button_external_pull:
            self.drive(b.button_pin, 1 if b.button_active_low else 0)
        else:
            self.drive(b.button_pin, None)

    def press(self) -> None:
        self.set_button(True)

    def release(self) -> None:
        if self.board.button_pin is not None:
            self.set_button(False)

    def press_for(self, ms: int) -> None:
        """Press now and release after ``ms`` (on a timer thread; returns at once)."""
        self.press()
        t = threading.Timer(ms / 1000.0, self.release)
        t.daemon = True
        t.start()

    def set_touch(self, touched: bool) -> None:
        with self._lock:
            self.touched = bool(touched)
            self._cond.notify_all()

    def touch_raw(self, pin: int) -> int:
        b = self.board
        return b.touch_pressed_raw if (self.touched and pin == b.touch_pin) else b.touch_idle_raw

    # -- analog --------------------------------------------------------------------------------
    @property
    def battery_v(self) -> float:
        with self._lock:
            hours = (time.monotonic() - self._battery_t) / 3600.0
            return max(0.0, self._battery_v - self.battery_drain_v_per_h * hours)

    @battery_v.setter
    def battery_v(self, volts: float) -> None:
        with self._lock:
            self._battery_v = float(volts)
            self._battery_t = time.monotonic()

    def set_analog(self, pin: int, volts: float) -> None:
        with self._lock:
            self._analog[pin] = float(volts)

    def pin_voltage(self, pin: int) -> float:
        b = self.board
        if pin == b.battery_adc_pin:
            return self.battery_v / b.battery_divider
        with self._lock:
            return self._analog.get(pin, 0.0)

    # -- PWM / NeoPixel (from the port) --------------------------------------------------------
    def set_pwm(self, pin: int, duty_u16) -> None:
        """PWM output level on ``pin``; ``duty_u16`` None means deinit (output off)."""
        duty = 0 if duty_u16 is None else int(duty_u16)
        b = self.board
        if pin == b.motor_pin:
            self.emit("motor", duty / 65535.0)
        elif pin == b.led_pin and b.led_kind == "pin":
            frac = duty / 65535.0
            self.emit("led", (1.0 - frac) if b.led_active_low else frac)
        else:
            self.emit("pwm", (pin, duty), key=("pwm", pin))

    def set_neopixel(self, pin: int, pixels) -> None:
        pixels = tuple(tuple(p) for p in pixels)
        b = self.board
        if pin == b.led_pin and b.led_kind == "neopixel":
            self.emit("led", pixels[0] if len(pixels) == 1 else pixels)
        else:
            self.emit("neopixel", (pin, pixels), key=("neopixel", pin))

    # -- wake sources --------------------------------------------------------------------------
    def wake_cause(self) -> int:
        """The wake source currently satisfied (a WAKE_* value), or WAKE_UNDEFINED."""
        with self._lock:
            w = self.wake
            if "ext0" in w:
                pin, level = w["ext0"]
                if self.level(pin) == level:
                    return WAKE_GPIO if self.board.chip == "esp32c3" else WAKE_EXT0
            if "ext1" in w:
                pins, any_high = w["ext1"]
                levels = [self.level(p) for p in pins]
                if pins and (any(levels) if any_high else not any(levels)):
                    return WAKE_EXT1
            if "gpio" in w:
                pins, level = w["gpio"]
                if any(self.level(p) == level for p in pins):
                    return WAKE_GPIO
            if w.get("touch") and self.touched:
                return WAKE_TOUCHPAD
            return WAKE_UNDEFINED

    def wait_wake(self, timeout_s, stop_event=None) -> int:
        """Block until a wake source is satisfied (its WAKE_* value) or ``timeout_s`` passes
        (WAKE_TIMER; None = no timer), or ``stop_event`` is set (WAKE_UNDEFINED)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                cause = self.wake_cause()
                if cause:
                    return cause
                if stop_event is not None and stop_event.is_set():
                    return WAKE_UNDEFINED
                left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if left <= 0:
                    return WAKE_TIMER
                self._cond.wait(left)

    # -- reset ---------------------------------------------------------------------------------
    def reset_pins(self) -> None:
        """Chip reset: GPIOs back to inputs without pulls, IRQs and wake sources forgotten, MCU
        outputs off. External parts keep their state (a NeoPixel keeps its colour, the DRV2605L its
        registers), as on the real board."""
        with self._lock:
            self.pin_mode.clear()
            self.pin_pull.clear()
            self.pin_out.clear()
            self._watchers.clear()
            self._last_level.clear()
            self.wake = {}
            self.touch_threshold.clear()
            current = dict(self._current)
        b = self.board
        if b.motor_driver != "drv2605l" and current.get("motor"):
            self.emit("motor", 0.0)
        if b.led_kind == "pin" and current.get("led"):
            self.emit("led", 0)
        for k, v in current.items():
            if isinstance(k, tuple) and k[0] in ("gpio", "pwm") and v[1]:
                self.emit(k[0], (k[1], 0), key=k)

    def apply_input(self, kind: str, value=None) -> None:
        """One entry point for inputs arriving from outside (radio bridge, control channel):
        "button" (bool), "press" (hold ms: press now, release later), "touch" (bool),
        "battery_v" (float), "analog" ((pin, volts)), "pin" ((pin, level|None))."""
        if kind == "button":
            self.set_button(bool(value))
        elif kind == "press":
            self.press_for(int(value or 100))
        elif kind == "touch":
            self.set_touch(bool(value))
        elif kind == "battery_v":
            self.battery_v = float(value)
        elif kind == "analog":
            self.set_analog(int(value[0]), float(value[1]))
        elif kind == "pin":
            self.drive(int(value[0]), value[1])
        else:
            raise ValueError("unknown input kind %r" % (kind,))
