"""LED policy: what the band's one LED shows at ``now_ms``, pure.

Highest priority first:
- error flash: fast 100/100 ms red blink for 1.2 s after ``error()``;
- identify: fast 150/150 ms white blink until ``identify_until``;
- pairing window open: 250/250 ms blue blink;
- low battery: a 60 ms amber blink every 4 s;
- advertising unpaired: a 30 ms white blink every 3 s ("I'm on");
- connected: a 30 ms green blink every 10 s;
- otherwise off. ``enabled = False`` (SetConfig LED off) leaves only error, identify and pairing.

``poll(now_ms)`` returns the colour as 0xRRGGBB when it changes (0 = off), else None. A plain pin LED is
on whenever the colour is non-zero (``led_on``).
"""

from hugband.ticks import add, diff
from hugproto.compat import const

OFF = const(0)
RED = const(0xFF0000)
GREEN = const(0x00FF00)
BLUE = const(0x0000FF)
WHITE = const(0x808080)
AMBER = const(0xFF8000)

_ERROR_MS = const(1200)


def led_on(colour: int) -> bool:
    return colour != 0


def _blink(now_ms: int, since: int, on_ms: int, period_ms: int) -> bool:
    return diff(now_ms, since) % period_ms < on_ms


class LedPolicy:
    def __init__(self, now_ms: int) -> None:
        self.enabled = True
        self.connected = False
        self.paired = False
        self.pairing = False
        self.low_battery = False
        self._t0 = now_ms
        self._error_until = now_ms
        self._error = False
        self._identify_until = now_ms
        self._identify = False
        self.colour = OFF

    def error(self, now_ms: int) -> None:
        self._error = True
        self._error_until = add(now_ms, _ERROR_MS)

    def identify(self, now_ms: int, ms: int) -> None:
        self._identify = True
        self._identify_until = add(now_ms, ms)

    def colour_at(self, now_ms: int) -> int:
        if self._error and diff(now_ms, self._error_until) >= 0:
            self._error = False
        if self._identify and diff(now_ms, self._identify_until) >= 0:
            self._identify = False
        t0 = self._t0
        if self._error:
            return RED if _blink(now_ms, t0, 100, 200) else OFF
        if self._identify:
            return WHITE if _blink(now_ms, t0, 150, 300) else OFF
        if self.pairing:
            return BLUE if _blink(now_ms, t0, 250, 500) else OFF
        if not self.enabled:
            return OFF
        if self.low_battery:
            return AMBER if _blink(now_ms, t0, 60, 4000) else OFF
        if self.connected:
            return GREEN if _blink(now_ms, t0, 30, 10000) else OFF
        if not self.paired:
            return WHITE if _blink(now_ms, t0, 30, 3000) else OFF
        return OFF

    def poll(self, now_ms: int):
        c = self.colour_at(now_ms)
        if c == self.colour:
            return None
        self.colour = c
        return c
