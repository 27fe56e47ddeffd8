"""Sim port of MicroPython's ``machine`` module for the ESP32 family (CPython stand-in).

Everything physical goes through ``hugsim.band.runtime.world`` (a :class:`hugsim.band.world.World`);
resets and sleeps go through the runner (``hugsim.band.runtime.band``). Behaviour follows the
MicroPython docs for the esp32 port; where the sim has to choose, the choice is written next to the code.

Pin IRQ delivery (``Pin.irq``): the World reports a level change in the thread that caused it (the
radio thread for a remote press, a test thread, a timer). ``hard=True`` handlers are called right there,
like a hardware ISR preempting the firmware (``disable_irq()`` holds them off). ``hard=False`` (the
esp32 default) handlers are queued on the MicroPython scheduler and run in the firmware thread (next
turn of its asyncio loop, or inside a sleep); when the 8-entry queue is full the IRQ is dropped, as on
the band. Either way handlers should only record and flag (e.g. ``ThreadSafeFlag.set()``).
"""

import threading
import time as _time

from hugsim.band import runtime as _rt
from hugsim.band import world as _w

# -- reset causes (machine.reset_cause()) and wake reasons (machine.wake_reason()) -----------------
PWRON_RESET = _w.PWRON_RESET
HARD_RESET = _w.HARD_RESET
WDT_RESET = _w.WDT_RESET
DEEPSLEEP_RESET = _w.DEEPSLEEP_RESET
SOFT_RESET = _w.SOFT_RESET
EXT0_WAKE = _w.WAKE_EXT0
PIN_WAKE = _w.WAKE_EXT0
EXT1_WAKE = _w.WAKE_EXT1
TIMER_WAKE = _w.WAKE_TIMER
TOUCHPAD_WAKE = _w.WAKE_TOUCHPAD
ULP_WAKE = 6
# wake abilities (Pin.irq(wake=...))
SLEEP = 2
DEEPSLEEP = 4

_DEFAULT_FREQ = 160_000_000


def _world():
    if _rt.world is None:
        _rt.world = _w.World()
    return _rt.world


def _chip():
    return _world().board.chip_info


# hard-IRQ exclusion: disable_irq() holds it; hard handlers (pins, radio) run under it
_irq_lock = _rt.irq_lock


class _IRQ:
    def __init__(self, pin) -> None:
        self._pin = pin

    def trigger(self) -> int:
        return self._pin._trigger

    def flags(self) -> int:
        return self._pin._flags


_NOARG = object()
_pins = {}


class Pin:
    IN = _w.MODE_IN
    OUT = _w.MODE_OUT
    OPEN_DRAIN = _w.MODE_OPEN_DRAIN
    PULL_DOWN = _w.PULL_DOWN
    PULL_UP = _w.PULL_UP
    PULL_HOLD = 4
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    def __new__(cls, id, *args, **kwargs):
        # esp32 Pin objects are static: Pin(5) is Pin(5)
        if isinstance(id, Pin):
            return id
        if not isinstance(id, int) or id not in _chip()["pins"]:
            raise ValueError("invalid pin")
        obj = _pins.get(id)
        if obj is None:
            obj = super().__new__(cls)
            obj._id = id
            obj._handler = None
            obj._trigger = 0
            obj._flags = 0
            obj._hard = False
            obj._watcher = None
            obj._drive = Pin.DRIVE_2
            _pins[id] = obj
        return obj

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, alt=None) -> None:
        self.init(mode, pull, value=value, drive=drive, alt=alt)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, alt=None) -> None:
        if mode not in (-1, None, Pin.IN, Pin.OUT, Pin.OPEN_DRAIN):
            raise ValueError("invalid pin mode")
        if mode in (Pin.OUT, Pin.OPEN_DRAIN) and self._id in _chip()["input_only"]:
            raise ValueError("pin can only be input")
        if pull not in (-1, None, Pin.PULL_UP, Pin.PULL_DOWN, Pin.PULL_HOLD):
            raise ValueError("invalid pull")
        if drive is not None:
            self._drive = drive
        _world().configure_pin(self._id, mode=None if mode in (-1, None) else mode, pull=pull, value=value)

    def __repr__(self) -> str:
        return "Pin(%d)" % self._id

    def value(self, x=_NOARG):
        if x is _NOARG:
            return _world().level(self._id)
        _world().set_output(self._id, x)
        return None

    def __call__(self, x=_NOARG):
        return self.value(x)

    def on(self) -> None:
        _world().set_output(self._id, 1)

    def off(self) -> None:
        _world().set_output(self._id, 0)

    def toggle(self) -> None:
        w = _world()
        w.set_output(self._id, 0 if w.pin_out.get(self._id, 0) else 1)

    def mode(self, mode=_NOARG):
        if mode is _NOARG:
            return _world().pin_mode.get(self._id, Pin.IN)
        self.init(mode)
        return None

    def pull(self, pull=_NOARG):
        if pull is _NOARG:
            return _world().pin_pull.get(self._id)
        self.init(pull=pull)
        return None

    def drive(self, drive=_NOARG):
        if drive is _NOARG:
            return self._drive
        self._drive = drive
        return None

    def irq(self, handler=_NOARG, trigger=IRQ_FALLING | IRQ_RISING, *, priority=1, wake=None, hard=False):
        if handler is _NOARG:
            handler = None
            configure = trigger != (Pin.IRQ_FALLING | Pin.IRQ_RISING) or wake is not None or hard
            if not configure:
                return _IRQ(self)
        w = _world()
        if wake is not None:
            # esp32: a wake-capable pin IRQ configures the ext0 wake source (level triggered)
            if trigger not in (Pin.WAKE_LOW, Pin.WAKE_HIGH):
                raise ValueError("bad wake value")
            if not wake & (SLEEP | DEEPSLEEP):
                raise ValueError("bad wake value")
            with w._lock:
                w.wake["ext0"] = (self._id, 1 if trigger == Pin.WAKE_HIGH else 0)
                w.wake["ext0_modes"] = wake
            return _IRQ(self)
        if self._watcher is not None:
            w.unwatch(self._id, self._watcher)
            self._watcher = None
        self._handler = handler
        self._trigger = trigger
        self._hard = bool(hard)
        if handler is not None and trigger:
            self._watcher = self._on_level
            w.watch(self._id, self._watcher)
        return _IRQ(self)

    def _on_level(self, level: int) -> None:
        edge = Pin.IRQ_RISING if level else Pin.IRQ_FALLING
        handler = self._handler
        if handler is None or not self._trigger & edge:
            return
        self._flags = edge
        if self._hard:
            try:
                with _irq_lock:
                    handler(self)
            except _rt.Reboot:
                pass  # machine.reset() from a hard IRQ: the band already reboots
            except Exception as exc:  # noqa: BLE001 - printed like an uncaught ISR exception
                print("Uncaught exception in IRQ callback handler: %r" % (exc,))
        elif not _rt.scheduler.schedule(handler, self):
            _rt.scheduler.dropped += 1


class Signal:
    """``Signal(pin, invert=False)`` or ``Signal(pin_args..., invert=False)``."""

    def __init__(self, pin, *args, invert=False, **kwargs) -> None:
        self._pin = pin if isinstance(pin, Pin) and not args and not kwargs else Pin(pin, *args, **kwargs)
        self._invert = bool(invert)

    def value(self, x=_NOARG):
        if x is _NOARG:
            return self._pin.value() ^ self._invert
        self._pin.value((1 if x else 0) ^ self._invert)
        return None

    def __call__(self, x=_NOARG):
        return self.value(x)

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)


def _pin_id(dest) -> int:
    if isinstance(dest, Pin):
        return dest._id
    return Pin(dest)._id


class PWM:
    """LEDC PWM. Outputs ``duty_u16`` (inverted if ``invert``) to the World for its pin.

    Defaults when a first ``PWM(pin)`` gives neither: 5 kHz and 50 % duty (the esp32 port's
    defaults), so pass ``duty_u16=0`` to start a motor silent.
    """

    _MAX_FREQ = 40_000_000

    def __init__(self, dest, *, freq=-1, duty_u16=-1, duty_ns=-1, duty=-1, invert=False) -> None:
        self._pin = _pin_id(dest)
        self._freq = 5000
        self._duty = 32768
        self._invert = False
        self._active = False
        self.init(freq=freq, duty_u16=duty_u16, duty_ns=duty_ns, duty=duty, invert=invert)

    def init(self, *, freq=-1, duty_u16=-1, duty_ns=-1, duty=-1, invert=None) -> None:
        if freq != -1:
            if not 0 < freq <= self._MAX_FREQ:
                raise ValueError("frequency must be from 1Hz to 40MHz")
            self._freq = int(freq)
        if invert is not None:
            self._invert = bool(invert)
        if duty_u16 != -1:
            self._duty = _clamp16(duty_u16)
        elif duty_ns != -1:
            self._duty = _clamp16(duty_ns * self._freq * 65535 // 1_000_000_000)
        elif duty != -1:
            self._duty = _clamp16(duty * 65535 // 1023)
        self._active = True
        self._out()

    def _out(self) -> None:
        d = 65535 - self._duty if self._invert else self._duty
        _world().set_pwm(self._pin, d)

    def freq(self, value=_NOARG):
        if value is _NOARG:
            return self._freq
        self.init(freq=value)
        return None

    def duty_u16(self, value=_NOARG):
        if value is _NOARG:
            return self._duty
        self.init(duty_u16=value)
        return None

    def duty_ns(self, value=_NOARG):
        if value is _NOARG:
            return self._duty * 1_000_000_000 // (self._freq * 65535)
        self.init(duty_ns=value)
        return None

    def duty(self, value=_NOARG):
        if value is _NOARG:
            return self._duty * 1023 // 65535
        self.init(duty=value)
        return None

    def deinit(self) -> None:
        self._active = False
        _world().set_pwm(self._pin, None)

    def __repr__(self) -> str:
        return "PWM(Pin(%d), freq=%d, duty_u16=%d)" % (self._pin, self._freq, self._duty)


def _clamp16(v) -> int:
    return max(0, min(65535, int(v)))


_ADC_PINS = {
    "esp32": (0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39),
    "esp32s3": tuple(range(1, 21)),
    "esp32c3": (0, 1, 2, 3, 4, 5),
}


class ADC:
    """Reads ``World.pin_voltage(pin)``. ``read_uv()`` is calibrated (clamped at the attenuation's
    range, e.g. 950 mV at ATTN_0DB on the ESP32 - the default - and 2450 mV at ATTN_11DB);
    ``read_u16()`` scales that range to 0-65535; ``read()`` returns 12-bit raw."""

    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_9BIT = 9
    WIDTH_10BIT = 10
    WIDTH_11BIT = 11
    WIDTH_12BIT = 12

    def __init__(self, id, *, sample_ns=None, atten=None) -> None:
        pin = _pin_id(id)
        if pin not in _ADC_PINS[_world().board.chip]:
            raise ValueError("invalid pin")
        self._pin = pin
        self._atten = ADC.ATTN_0DB
        self._bits = 12
        self.init(sample_ns=sample_ns, atten=atten)

    def init(self, *, sample_ns=None, atten=None) -> None:
        if atten is not None:
            if atten not in (0, 1, 2, 3):
                raise ValueError("invalid atten")
            self._atten = atten

    def atten(self, atten) -> None:
        self.init(atten=atten)

    def width(self, bits) -> None:
        if bits not in (9, 10, 11, 12):
            raise ValueError("invalid width")
        self._bits = bits

    def _mv(self):
        vmax = _chip()["adc_max_mv"][self._atten]
        mv = max(0.0, min(_world().pin_voltage(self._pin) * 1000.0, float(vmax)))
        return mv, vmax

    def read_uv(self) -> int:
        mv, _ = self._mv()
        return int(mv * 1000)

    def read_u16(self) -> int:
        mv, vmax = self._mv()
        return int(round(mv / vmax * 65535))

    def read(self) -> int:
        mv, vmax = self._mv()
        return int(round(mv / vmax * ((1 << self._bits) - 1)))

    def deinit(self) -> None:
        return None


class I2C:
    """I2C bus to the World's devices (a DRV2605L at 0x5A on ``motor_driver: "drv2605l"`` boards).

    Devices answer only when the bus uses the board's ``i2c`` pins (when both are known). A missing
    device raises ``OSError(19)`` (ENODEV), as the esp32 port does on a NACK.
    """

    def __init__(self, id=-1, *, scl=None, sda=None, freq=400_000, timeout=50_000) -> None:
        self._scl = None if scl is None else _pin_id(scl)
        self._sda = None if sda is None else _pin_id(sda)
        self._freq = freq
        self._ptr = {}

    def init(self, *, scl=None, sda=None, freq=400_000) -> None:
        if scl is not None:
            self._scl = _pin_id(scl)
        if sda is not None:
            self._sda = _pin_id(sda)
        self._freq = freq

    def deinit(self) -> None:
        return None

    def _devices(self) -> dict:
        w = _world()
        cfg = w.board.i2c
        for mine, key in ((self._scl, "scl"), (self._sda, "sda")):
            want = cfg.get(key)
            if mine is not None and want is not None and mine != want:
                return {}
        return w.i2c_devices

    def _dev(self, addr: int):
        dev = self._devices().get(addr)
        if dev is None:
            raise OSError(19)  # ENODEV
        return dev

    def scan(self) -> list:
        return sorted(self._devices())

    def writeto(self, addr, buf, stop=True, /) -> int:
        dev = self._dev(addr)
        buf = bytes(buf)
        if buf:
            self._ptr[addr] = buf[0]
            if len(buf) > 1:
                dev.write(buf[0], buf[1:])
                self._ptr[addr] = (buf[0] + len(buf) - 1) & 0xFF
        return len(buf)

    def writevto(self, addr, vector, stop=True, /) -> int:
        return self.writeto(addr, b"".join(bytes(v) for v in vector), stop)

    def readfrom(self, addr, nbytes, stop=True, /) -> bytes:
        dev = self._dev(addr)
        reg = self._ptr.get(addr, 0)
        self._ptr[addr] = (reg + nbytes) & 0xFF
        return dev.read(reg, nbytes)

    def readfrom_into(self, addr, buf, stop=True, /) -> None:
        data = self.readfrom(addr, len(buf), stop)
        buf[: len(data)] = data

    def writeto_mem(self, addr, memaddr, buf, /, *, addrsize=8) -> None:
        self._dev(addr).write(memaddr, bytes(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, /, *, addrsize=8) -> bytes:
        return self._dev(addr).read(memaddr, nbytes)

    def readfrom_mem_into(self, addr, memaddr, buf, /, *, addrsize=8) -> None:
        data = self.readfrom_mem(addr, memaddr, len(buf))
        buf[: len(data)] = data


class SoftI2C(I2C):
    def __init__(self, scl, sda, *, freq=400_000, timeout=50_000) -> None:
        super().__init__(-1, scl=scl, sda=sda, freq=freq, timeout=timeout)


class TouchPad:
    """Capacitive touch: ``read()`` drops when touched on the ESP32 and rises on the S2/S3
    (``World.set_touch``). Not present on the C3 (the class is removed there, as on the band)."""

    def __init__(self, pin) -> None:
        pid = _pin_id(pin)
        if pid not in _chip()["touch_pins"]:
            raise ValueError("invalid pin for touchpad")
        self._pin = pid

    def read(self) -> int:
        return _world().touch_raw(self._pin)

    def config(self, value) -> None:
        _world().touch_threshold[self._pin] = value


class WDT:
    """Watchdog: if not fed within ``timeout`` ms the band reboots with ``WDT_RESET``. It cannot be
    stopped; the esp32 minimum (1 s, per the docs) applies."""

    def __init__(self, *, id=0, timeout=5000) -> None:
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        self._timeout = max(1000, int(timeout))
        if _rt.band is not None:
            _rt.band.wdt_arm(self._timeout)

    def feed(self) -> None:
        if _rt.band is not None:
            _rt.band.wdt_feed()


_timers = []


class Timer:
    """Software stand-in for the esp32 hardware timers; callbacks are soft (scheduled)."""

    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id, /, **kwargs) -> None:
        self._id = id
        self._gen = 0
        self._thread = None
        self._lock = threading.Lock()
        if kwargs:
            self.init(**kwargs)

    def init(self, *, mode=PERIODIC, period=-1, freq=-1, callback=None, tick_hz=1000) -> None:
        self.deinit()
        if freq != -1 and freq is not None:
            interval = 1.0 / freq
        elif period is not None and period >= 0:
            interval = period / float(tick_hz)
        else:
            raise ValueError("period or freq required")
        with self._lock:
            self._gen += 1
            gen = self._gen
        self._mode = mode
        self._callback = callback
        t = threading.Thread(target=self._run, args=(gen, interval), name="hugsim-timer", daemon=True)
        self._thread = t
        _timers.append(self)
        t.start()

    def _run(self, gen, interval) -> None:
        nxt = _time.monotonic() + interval
        while True:
            _time.sleep(max(0.0, nxt - _time.monotonic()))
            with self._lock:
                if gen != self._gen:
                    return
            if self._callback is not None:
                _rt.scheduler.schedule(self._callback, self)
            if self._mode == Timer.ONE_SHOT:
                return
            nxt += interval

    def deinit(self) -> None:
        with self._lock:
            self._gen += 1
        if self in _timers:
            _timers.remove(self)


def _stop_timers() -> None:
    for t in list(_timers):
        t.deinit()


class RTC:
    """``memory()`` survives soft resets and deep sleep (not power loss); ``datetime()`` is the host
    clock plus whatever offset the firmware set."""

    def __init__(self, id=0, /, **kwargs) -> None:
        if "datetime" in kwargs:
            self.datetime(kwargs["datetime"])

    def memory(self, data=_NOARG):
        w = _world()
        if data is _NOARG:
            return bytes(w.rtc_memory)
        data = bytes(data)
        if len(data) > 2048:
            raise ValueError("buffer too long")
        w.rtc_memory = data
        return None

    def datetime(self, dt=None):
        w = _world()
        off = getattr(w, "rtc_offset_s", 0.0)
        if dt is None:
            t = _time.time() + off
            st = _time.gmtime(int(t))
            if isinstance(st, tuple):
                y, mo, d, h, mi, s, wd = st[:7]
            else:
                y, mo, d, h, mi, s, wd = (
                    st.tm_year,
                    st.tm_mon,
                    st.tm_mday,
                    st.tm_hour,
                    st.tm_min,
                    st.tm_sec,
                    st.tm_wday,
                )
            return (y, mo, d, wd, h, mi, s, int((t % 1) * 1_000_000))
        y, mo, d, _wd, h, mi, s = tuple(dt)[:7]
        import calendar

        w.rtc_offset_s = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - _time.time()
        return None

    def init(self, datetime=None) -> None:
        if datetime is not None:
            self.datetime(datetime)


# -- module functions ------------------------------------------------------------------------------
def reset():
    """esp_restart(): reboots; the next boot sees ``reset_cause() == SOFT_RESET`` (esp32 maps
    ESP_RST_SW to SOFT_RESET)."""
    _rt.reboot("soft")


def soft_reset():
    """Restart the interpreter only: reset_cause() keeps its value."""
    _rt.reboot("soft_reset")


def deepsleep(time_ms=0, /):
    """The firmware stops; it restarts with ``DEEPSLEEP_RESET`` when a wake source fires or
    after ``time_ms`` (0: no timer)."""
    _rt.reboot("deepsleep", ms=int(time_ms or 0))


def lightsleep(time_ms=0, /) -> None:
    """Pause (CPU halted: no scheduled callbacks) until ``time_ms`` passes or a wake source fires."""
    w = _world()
    w.emit("power", "lightsleep")
    stop = _rt.band.reboot_event if _rt.band is not None else None
    w.wait_wake(time_ms / 1000.0 if time_ms else None, stop_event=stop)
    w.emit("power", "active")
    _rt.check_reboot()


sleep = lightsleep


def idle() -> None:
    _rt.fw_wait(0.001)


def freq(hz=_NOARG, /):
    w = _world()
    if hz is _NOARG:
        return getattr(w, "cpu_hz", _DEFAULT_FREQ)
    mhz = _chip()["freqs"]
    if hz % 1_000_000 or hz // 1_000_000 not in mhz:
        raise ValueError("frequency must be " + ", ".join("%dMHz" % m for m in mhz))
    w.cpu_hz = int(hz)
    w.emit("cpu_hz", int(hz))
    return None


def unique_id() -> bytes:
    """The chip's base MAC: the BLE address (``World.address``) minus 2, as ESP-IDF derives it."""
    mac = int(_world().address.replace(":", ""), 16)
    return ((mac - 2) & 0xFFFFFFFFFFFF).to_bytes(6, "big")


def reset_cause() -> int:
    return _rt.reset_cause


def wake_reason() -> int:
    return _rt.wake_reason


def disable_irq() -> int:
    _irq_lock.acquire()
    return 1


def enable_irq(state=1, /) -> None:
    try:
        _irq_lock.release()
    except RuntimeError:
        pass


def time_pulse_us(pin, pulse_level, timeout_us=1_000_000, /) -> int:
    deadline = _time.monotonic() + timeout_us / 1e6
    while pin.value() != pulse_level:
        if _time.monotonic() > deadline:
            return -2
        _rt.fw_wait(0.0005)
    start = _time.monotonic()
    while pin.value() == pulse_level:
        if _time.monotonic() > start + timeout_us / 1e6:
            return -1
        _rt.fw_wait(0.0005)
    return int((_time.monotonic() - start) * 1e6)


if not _chip()["touch_pins"]:
    del TouchPad
