"""Power policy and the band's own energy model, pure and driven by ``now_ms``.

Stock MicroPython cannot light-sleep with BLE on (micropython issue 6396), so the levers are: a lower
CPU clock, a longer advertising interval when nobody is connecting, deep sleep when unpaired and idle
(wake on the button), and honesty: ``EnergyMeter`` accumulates the time spent in each state and
estimates the charge used, for the power benchmark.

- ``AdvertisingBackoff``: 100 ms for 30 s after boot / disconnect / a press (a phone looking for the
  band finds it fast), then 500 ms until 2 minutes, then 1285 ms (one of Apple's recommended values).
- ``PowerPolicy.should_deep_sleep``: unpaired, not connected, no activity for ``idle_sleep_min``
  minutes (0 = never).
- ``battery_percent(mv)``: single-cell LiPo resting-voltage curve, linear between table points.
- ``BatteryMonitor``: low-battery warning with hysteresis (low at <= ``low_pct``, clear at >= low + 5).
"""

from hugband.ticks import diff
from hugproto.compat import const

ADV_FAST_MS = const(100)
ADV_MEDIUM_MS = const(500)
ADV_SLOW_MS = const(1285)
_FAST_FOR_MS = const(30000)
_MEDIUM_UNTIL_MS = const(120000)
_HYSTERESIS_PCT = const(5)

# (millivolts, percent), falling; typical 1-cell LiPo at rest, light load
_LIPO = (
    (4200, 100),
    (4150, 95),
    (4110, 90),
    (4080, 85),
    (4020, 80),
    (3980, 70),
    (3950, 60),
    (3910, 50),
    (3870, 40),
    (3850, 30),
    (3840, 20),
    (3800, 10),
    (3750, 5),
    (3700, 2),
    (3600, 0),
)


def battery_percent(mv: int) -> int:
    """LiPo state of charge 0..100 from the cell voltage in millivolts."""
    if mv >= _LIPO[0][0]:
        return 100
    for i in range(1, len(_LIPO)):
        v1, p1 = _LIPO[i]
        if mv >= v1:
            v0, p0 = _LIPO[i - 1]
            return p1 + (mv - v1) * (p0 - p1) // (v0 - v1)
    return 0


def battery_mv(adc_uv: int, divider: float) -> int:
    """Cell millivolts from the ADC pin's microvolts (``ADC.read_uv()``) and the divider ratio (2.0)."""
    return int(adc_uv * divider) // 1000


class AdvertisingBackoff:
    def __init__(self, now_ms: int) -> None:
        self._since = now_ms
        self.interval_ms = ADV_FAST_MS

    def kick(self, now_ms: int) -> None:
        """Boot, disconnect or the pairing window: advertise fast again."""
        self._since = now_ms

    def poll(self, now_ms: int):
        """The new interval in ms when it changes, else None."""
        age = diff(now_ms, self._since)
        if age < _FAST_FOR_MS:
            want = ADV_FAST_MS
        elif age < _MEDIUM_UNTIL_MS:
            want = ADV_MEDIUM_MS
        else:
            want = ADV_SLOW_MS
        if want == self.interval_ms:
            return None
        self.interval_ms = want
        return want


class BatteryMonitor:
    def __init__(self, low_pct: int = 15) -> None:
        self.low_pct = low_pct
        self.percent = 100
        self.mv = 0
        self.low = False

    def update(self, mv: int) -> bool:
        """Feed a reading; True exactly when the band has just become low (warn once)."""
        self.mv = mv
        self.percent = battery_percent(mv)
        if self.low:
            if self.percent >= self.low_pct + _HYSTERESIS_PCT:
                self.low = False
            return False
        if self.percent <= self.low_pct:
            self.low = True
            return True
        return False


class PowerPolicy:
    def __init__(self, cpu_mhz: int, now_ms: int, idle_sleep_min: int = 10) -> None:
        self.cpu_mhz = cpu_mhz  # 80 is the lowest clock at which the ESP32 radio runs
        self.idle_sleep_min = idle_sleep_min
        self._last_activity = now_ms

    def activity(self, now_ms: int) -> None:
        self._last_activity = now_ms

    def should_deep_sleep(self, now_ms: int, paired: bool, connected: bool, busy: bool = False) -> bool:
        if paired or connected or busy or self.idle_sleep_min <= 0:
            return False
        return diff(now_ms, self._last_activity) >= self.idle_sleep_min * 60000


# EnergyMeter states (one at a time) and their estimated average currents in microamps at 80 MHz.
# Estimates from ESP32-C3 datasheet figures and the DESIGN notes (12-27 mA with BLE on, no light
# sleep); the benchmark prints them with the times so the estimate can be redone with measurements.
RADIO_OFF = const(0)
ADVERTISING = const(1)
CONNECTED = const(2)
DEEP_SLEEP = const(3)
STATE_NAMES = ("radio_off", "advertising", "connected", "deep_sleep")
_STATE_UA = (12000, 14000, 16000, 45)
_MOTOR_UA = const(60000)  # small ERM at ~3 V
_LED_UA = const(2000)
_UA_PER_MHZ_ABOVE_80 = const(60)  # extra CPU current per MHz above 80


class EnergyMeter:
    """Time per state (ms) plus motor-on and LED-on time; ``charge_uah`` estimates what was used."""

    def __init__(self, now_ms: int, cpu_mhz: int = 80) -> None:
        self.state = RADIO_OFF
        self.cpu_mhz = cpu_mhz
        self.state_ms = [0, 0, 0, 0]
        self.cpu_ms = {}  # MHz -> ms awake at that clock
        self.motor_ms = 0
        self.led_ms = 0
        self._t = now_ms
        self._motor = False
        self._led = False

    def _advance(self, now_ms: int) -> None:
        dt = diff(now_ms, self._t)
        if dt <= 0:
            return
        self._t = now_ms
        self.state_ms[self.state] += dt
        if self.state != DEEP_SLEEP:
            self.cpu_ms[self.cpu_mhz] = self.cpu_ms.get(self.cpu_mhz, 0) + dt
        if self._motor:
            self.motor_ms += dt
        if self._led:
            self.led_ms += dt

    def set_state(self, state: int, now_ms: int) -> None:
        self._advance(now_ms)
        self.state = state

    def set_cpu(self, mhz: int, now_ms: int) -> None:
        self._advance(now_ms)
        self.cpu_mhz = mhz

    def set_motor(self, on: bool, now_ms: int) -> None:
        self._advance(now_ms)
        self._motor = bool(on)

    def set_led(self, on: bool, now_ms: int) -> None:
        self._advance(now_ms)
        self._led = bool(on)

    def update(self, now_ms: int) -> None:
        self._advance(now_ms)

    def charge_uah(self) -> int:
        """Estimated charge used so far in microamp-hours."""
        return self._ua_ms() // 3600000

    def _ua_ms(self) -> int:
        ua_ms = 0
        for s in range(4):
            ua_ms += _STATE_UA[s] * self.state_ms[s]
        for mhz in self.cpu_ms:
            if mhz > 80:
                ua_ms += (mhz - 80) * _UA_PER_MHZ_ABOVE_80 * self.cpu_ms[mhz]
        ua_ms += _MOTOR_UA * self.motor_ms + _LED_UA * self.led_ms
        return ua_ms

    def average_ua(self) -> int:
        total = 0
        for s in range(4):
            total += self.state_ms[s]
        return self._ua_ms() // total if total else 0

    def report(self) -> dict:
        out = {}
        for s in range(4):
            out[STATE_NAMES[s] + "_ms"] = self.state_ms[s]
        out["motor_ms"] = self.motor_ms
        out["led_ms"] = self.led_ms
        out["charge_uah"] = self.charge_uah()
        out["average_ua"] = self.average_ua()
        return out
