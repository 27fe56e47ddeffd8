"""``machine`` for a virtual band on the MicroPython unix port (shadows the port's own): the ESP32
port's documented behaviour, on the band's physics in ``simlink``.

What differs from the chip, because a unix process is not one:

* ``Pin.irq(hard=True)`` handlers run in the radio task the moment an input arrives, between two
  steps of the firmware's asyncio loop (a unix process cannot preempt a bytecode); the edge is
  time-stamped then, at most one loop step late. ``hard=False`` handlers go through
  ``micropython.schedule``, as on the ESP32.
* ``WDT`` is kept by the supervisor (``hugsim.band.process``): ``feed()`` tells it on stdout; a loop
  that stops feeding is killed and the band boots again with ``WDT_RESET``, flash as it was.
* ``reset()`` and ``deepsleep()`` end the process (exit codes below); the supervisor boots it again,
  after a wake source fires for deep sleep. ``lightsleep()`` sleeps the process.
* ``disable_irq()`` returns the state and holds nothing: no IRQ can run before the next ``await``.
"""

import sys
import time

import simlink

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
PIN_WAKE = EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
SLEEP = 2
DEEPSLEEP = 4

EXIT_RESET = 10  # the supervisor boots the band again (SOFT_RESET)
EXIT_DEEPSLEEP = 11  # the supervisor waits for a wake source, then boots it (DEEPSLEEP_RESET)

_FREQS = {"esp32c3": (10, 20, 40, 80, 160)}
_NOARG = object()
_freq = 160_000_000


class Pin:
    IN = simlink.MODE_IN
    OUT = simlink.MODE_OUT
    OPEN_DRAIN = simlink.MODE_OPEN_DRAIN
    PULL_DOWN = simlink.PULL_DOWN
    PULL_UP = simlink.PULL_UP
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5

    def __init__(self, id, mode=-1, pull=-1, *, value=None) -> None:
        if isinstance(id, Pin):
            id = id._id
        if not isinstance(id, int) or not 0 <= id <= 48:
            raise ValueError("invalid pin")
        self._id = id
        self._handler = None
        self._trigger = 0
        self._hard = False
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None) -> None:
        if mode not in (-1, None, Pin.IN, Pin.OUT, Pin.OPEN_DRAIN):
            raise ValueError("invalid pin mode")
        if mode not in (-1, None):
            simlink.pin_mode[self._id] = mode
        if pull not in (-1, None):
            simlink.pin_pull[self._id] = pull
        if value is not None:
            simlink.pin_out[self._id] = 1 if value else 0
        simlink.pin_changed(self._id, True)

    def value(self, x=_NOARG):
        if x is _NOARG:
            return simlink.level(self._id)
        simlink.pin_out[self._id] = 1 if x else 0
        simlink.pin_changed(self._id, True)
        return None

    def __call__(self, x=_NOARG):
        return self.value(x)

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)

    def irq(self, handler=None, trigger=3, *, priority=1, wake=None, hard=False):
        if wake is not None:
            simlink.wake["ext0"] = (self._id, 1 if trigger == Pin.WAKE_HIGH else 0)
            return None
        self._handler = handler
        self._trigger = trigger
        self._hard = hard
        simlink.watch(self._id, self._on_level if handler is not None and trigger else None)
        return None

    def _on_level(self, level: int) -> None:
        if not self._trigger & (Pin.IRQ_RISING if level else Pin.IRQ_FALLING):
            return
        if self._hard:
            try:
                self._handler(self)
            except Exception as e:  # noqa: BLE001 - printed like an uncaught ISR exception
                print("Uncaught exception in IRQ callback handler")
                sys.print_exception(e)
        else:
            import micropython

            try:
                micropython.schedule(self._handler, self)
            except RuntimeError:
                pass  # queue full: dropped, as mp_sched_schedule's result is ignored on the ESP32

    def __repr__(self) -> str:
        return "Pin(%d)" % self._id


def _pin_id(p) -> int:
    return p._id if isinstance(p, Pin) else Pin(p)._id


class PWM:
    def __init__(self, dest, *, freq=5000, duty_u16=32768, invert=False) -> None:
        self._pin = _pin_id(dest)
        self._freq = freq
        self._invert = invert
        self.duty_u16(duty_u16)

    def freq(self, value=_NOARG):
        if value is _NOARG:
            return self._freq
        self._freq = value
        return None

    def duty_u16(self, value=_NOARG):
        if value is _NOARG:
            return self._duty
        self._duty = max(0, min(65535, value))
        simlink.set_pwm(self._pin, 65535 - self._duty if self._invert else self._duty)
        return None

    def deinit(self) -> None:
        simlink.set_pwm(self._pin, 0)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    _MAX_MV = (950, 1250, 1750, 2450)

    def __init__(self, pin, *, atten=0) -> None:
        self._pin = _pin_id(pin)
        self._atten = atten

    def _mv(self) -> float:
        v = 0.0
        if self._pin == simlink.board.get("battery_adc_pin"):
            v = simlink.battery_v / simlink.board.get("battery_divider", 2.0)
        return max(0.0, min(v * 1000, self._MAX_MV[self._atten]))

    def read_uv(self) -> int:
        return int(self._mv() * 1000)

    def read_u16(self) -> int:
        return int(self._mv() / self._MAX_MV[self._atten] * 65535)


class I2C:
    """The board's I2C bus: a DRV2605L at 0x5A when the board has one; others raise ENODEV."""

    def __init__(self, id=-1, *, scl=None, sda=None, freq=400_000) -> None:
        self._has_drv = simlink.board.get("motor_driver") == "drv2605l"

    def _dev(self, addr: int) -> None:
        if addr != 0x5A or not self._has_drv:
            raise OSError(19)

    def scan(self) -> list:
        return [0x5A] if self._has_drv else []

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8) -> None:
        self._dev(addr)
        simlink.drv_write(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8) -> bytes:
        self._dev(addr)
        return bytes(simlink.drv_regs[memaddr : memaddr + nbytes])


class TouchPad:
    def __init__(self, pin) -> None:
        self._pin = _pin_id(pin)
        if self._pin != simlink.board.get("touch_pin") and simlink.board.get("mcu") == "esp32c3":
            raise ValueError("invalid pin for touchpad")

    def read(self) -> int:
        return simlink.touch_raw(self._pin)

    def config(self, value) -> None:
        pass


class WDT:
    """Cannot be stopped; at least 1 s. The supervisor resets a band not fed within the timeout."""

    def __init__(self, *, id=0, timeout=5000) -> None:
        self._timeout = max(1000, timeout)
        self._told = time.ticks_ms()
        simlink.line({"wdt": self._timeout})

    def feed(self) -> None:
        now = time.ticks_ms()
        if time.ticks_diff(now, self._told) >= self._timeout // 4:  # enough for the supervisor
            self._told = now
            simlink.line({"feed": 1})


def reset() -> None:
    """esp_restart(): the band boots again; reset_cause() is SOFT_RESET."""
    simlink.line({"reset": "soft"})
    sys.exit(EXIT_RESET)


def soft_reset() -> None:
    reset()


def deepsleep(time_ms=0) -> None:
    """The band stops; it boots with DEEPSLEEP_RESET when a wake source fires or after time_ms."""
    simlink.line({"sleep": {"ms": time_ms, "wake": simlink.wake, "board": simlink.board.get("name")}})
    sys.exit(EXIT_DEEPSLEEP)


def lightsleep(time_ms=0) -> None:
    time.sleep_ms(time_ms)


def idle() -> None:
    time.sleep_ms(1)


def freq(hz=_NOARG):
    global _freq
    if hz is _NOARG:
        return _freq
    mhz = _FREQS.get(simlink.board.get("mcu"), (20, 40, 80, 160, 240))
    if hz % 1_000_000 or hz // 1_000_000 not in mhz:
        raise ValueError("invalid frequency")
    _freq = hz
    simlink.emit("cpu_hz", hz)
    return None


def unique_id() -> bytes:
    """The chip's base MAC: the BLE address minus 2, as ESP-IDF derives it."""
    mac = int.from_bytes(simlink.addr_bytes, "big")
    return ((mac - 2) & 0xFFFFFFFFFFFF).to_bytes(6, "big")


def reset_cause() -> int:
    return simlink.reset_cause


def wake_reason() -> int:
    return simlink.wake_reason


def disable_irq() -> int:
    return 1


def enable_irq(state=1) -> None:
    return None
