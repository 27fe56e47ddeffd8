"""The heart: a gesture recogniser for one push button or touch pad, pure and driven by ``now_ms``.

Feed it the raw input with ``update(pressed, now_ms)`` (on every sample or every edge) and call
``poll(now_ms)`` regularly (every 5-20 ms while something is happening); take recognised gestures with
``get()``. Gestures:

- ``TAP``: 1..5 short presses (each < 600 ms), each within ``_TAP_GAP_MS`` of the previous release.
  ``value`` is the count. The gesture ends when the gap passes with no new press, or at once on the
  5th tap: a 6th tap starts a new gesture (counts are capped at 5, never lost). Taps still waiting when
  a press turns into a hold are reported first.
- ``SQUEEZE``: a hold of at least 600 ms released before 5 s. ``value`` is the intensity 1..255:
  ``_SQUEEZE_LOW`` at 0.6 s rising linearly to 255 at 3 s and above.
- ``PAIRING``: fires at 5 s while still held (the release that follows reports nothing more).
- ``FACTORY_RESET``: fires at 10 s while still held (after ``PAIRING``); the shell plays a confirming
  buzz, then resets.

Debounce: the raw input must stay unchanged for ``_DEBOUNCE_MS`` before it counts; the edge is
time-stamped at the last raw change, so bounces neither add taps nor stretch durations.

Events are ``(kind, value, duration_ms, t_ms)`` tuples in a bounded queue of ``_QUEUE`` entries; when it
is full the newest event is dropped and ``dropped`` counts it (the shell drains after every poll, so
this only happens if it stops draining).
"""

from array import array

from hugband.ticks import diff
from hugproto.compat import const

TAP = const(1)
SQUEEZE = const(2)
PAIRING = const(3)
FACTORY_RESET = const(4)

NAMES = {TAP: "tap", SQUEEZE: "squeeze", PAIRING: "pairing", FACTORY_RESET: "factory_reset"}

_DEBOUNCE_MS = const(25)
_TAP_GAP_MS = const(400)
_MAX_TAPS = const(5)
_SQUEEZE_MS = const(600)
_SQUEEZE_FULL_MS = const(3000)
_SQUEEZE_LOW = const(64)
_PAIRING_MS = const(5000)
_RESET_MS = const(10000)
_QUEUE = const(8)
_EDGES = const(16)

# hold stages while the button is down
_STAGE_SHORT = const(0)
_STAGE_SQUEEZE = const(1)
_STAGE_PAIRING = const(2)
_STAGE_RESET = const(3)


def squeeze_intensity(duration_ms: int) -> int:
    """Intensity 1..255 for a squeeze that lasted ``duration_ms``."""
    if duration_ms <= _SQUEEZE_MS:
        return _SQUEEZE_LOW
    if duration_ms >= _SQUEEZE_FULL_MS:
        return 255
    span = _SQUEEZE_FULL_MS - _SQUEEZE_MS
    return _SQUEEZE_LOW + (duration_ms - _SQUEEZE_MS) * (255 - _SQUEEZE_LOW) // span


class Gestures:
    """Debounce + gesture recognition for one input. No hardware; times are ``ticks_ms`` ints."""

    def __init__(self, debounce_ms: int = _DEBOUNCE_MS, tap_gap_ms: int = _TAP_GAP_MS) -> None:
        self.debounce_ms = debounce_ms
        self.tap_gap_ms = tap_gap_ms
        self._raw = False
        self._raw_t = 0
        self._stable = False
        self._down_t = 0
        self._stage = _STAGE_SHORT
        self._taps = 0
        self._taps_t = 0  # when the first tap of the pending group started
        self._last_up_t = 0
        self._q: list = [None] * _QUEUE
        self._head = 0
        self._len = 0
        self.dropped = 0
        self.bounces = 0

    # -- input ---------------------------------------------------------------------------------
    def update(self, pressed: bool, now_ms: int) -> None:
        """Record the raw input level at ``now_ms`` (a sample or an edge)."""
        pressed = bool(pressed)
        if pressed == self._raw:
            return
        self._settle(now_ms)
        if self._raw != self._stable:
            self.bounces += 1  # it changed back before the debounce time: a bounce
        self._raw = pressed
        self._raw_t = now_ms

    def poll(self, now_ms: int) -> None:
        """Advance timers: commit debounced edges, fire holds and finish tap groups."""
        self._settle(now_ms)
        if self._stable:
            # a release still inside its debounce time happened at _raw_t, not now
            self._check_hold(self._raw_t if not self._raw else now_ms)
        elif self._taps and diff(now_ms, self._last_up_t) >= self.tap_gap_ms:
            self._flush_taps()

    @property
    def pressed(self) -> bool:
        """The debounced state."""
        return self._stable

    @property
    def idle(self) -> bool:
        """Nothing held, nothing pending: the shell may poll slowly (or sleep)."""
        return not self._stable and not self._raw and not self._taps

    # -- output --------------------------------------------------------------------------------
    def get(self):
        """The oldest recognised gesture ``(kind, value, duration_ms, t_ms)`` or None."""
        if not self._len:
            return None
        ev = self._q[self._head]
        self._q[self._head] = None
        self._head = (self._head + 1) % _QUEUE
        self._len -= 1
        return ev

    def __len__(self) -> int:
        return self._len

    # -- internals -----------------------------------------------------------------------------
    def _emit(self, kind: int, value: int, duration_ms: int, t_ms: int) -> None:
        if self._len >= _QUEUE:
            self.dropped += 1
            return
        self._q[(self._head + self._len) % _QUEUE] = (kind, value, duration_ms, t_ms)
        self._len += 1

    def _settle(self, now_ms: int) -> None:
        if self._raw == self._stable or diff(now_ms, self._raw_t) < self.debounce_ms:
            return
        t = self._raw_t
        self._stable = self._raw
        if self._stable:
            self._down(t)
            self._check_hold(now_ms)
        else:
            self._check_hold(t)  # a hold stage reached before the release still fires
            self._up(t)

    def _down(self, t: int) -> None:
        self._down_t = t
        self._stage = _STAGE_SHORT
        if self._taps and diff(t, self._last_up_t) >= self.tap_gap_ms:
            self._flush_taps()  # the previous group ended before this press (poll was late)

    def _up(self, t: int) -> None:
        held = diff(t, self._down_t)
        stage = self._stage
        if stage == _STAGE_SHORT:
            if not self._taps:
                self._taps_t = self._down_t
            self._taps += 1
            self._last_up_t = t
            if self._taps >= _MAX_TAPS:
                self._flush_taps()
        elif stage == _STAGE_SQUEEZE:
            self._emit(SQUEEZE, squeeze_intensity(held), held, self._down_t)
        # PAIRING / RESET were reported when they were reached; the release ends them.

    def _check_hold(self, now_ms: int) -> None:
        held = diff(now_ms, self._down_t)
        if self._stage == _STAGE_SHORT and held >= _SQUEEZE_MS:
            self._stage = _STAGE_SQUEEZE
            if self._taps:
                self._flush_taps()
        if self._stage == _STAGE_SQUEEZE and held >= _PAIRING_MS:
            self._stage = _STAGE_PAIRING
            self._emit(PAIRING, 0, _PAIRING_MS, self._down_t)
        if self._stage == _STAGE_PAIRING and held >= _RESET_MS:
            self._stage = _STAGE_RESET
            self._emit(FACTORY_RESET, 0, _RESET_MS, self._down_t)

    def _flush_taps(self) -> None:
        n = self._taps
        self._taps = 0
        self._emit(TAP, n, diff(self._last_up_t, self._taps_t), self._taps_t)


class EdgeLog:
    """Button edges time-stamped where they happen (a hard IRQ), so a tap shorter than a stall of the
    main loop still counts, with its true times.

    ``record`` allocates nothing and only moves the write index; ``take`` only moves the read index
    (one writer, one reader: no lock). When 16 edges are waiting the newest is dropped and counted;
    the shell's level sample after draining catches the button up.
    """

    def __init__(self) -> None:
        self._t = array("i", bytes(4 * _EDGES))
        self._pressed = bytearray(_EDGES)
        self._w = 0  # indices run mod 2 * _EDGES: full and empty differ
        self._r = 0
        self.dropped = 0

    def record(self, pressed: int, t_ms: int) -> None:
        if (self._w - self._r) % (2 * _EDGES) >= _EDGES:
            self.dropped += 1
            return
        i = self._w % _EDGES
        self._t[i] = t_ms
        self._pressed[i] = pressed
        self._w = (self._w + 1) % (2 * _EDGES)

    def take(self):
        """The oldest edge as ``(pressed, t_ms)``, or None."""
        if self._r == self._w:
            return None
        i = self._r % _EDGES
        edge = (self._pressed[i] != 0, self._t[i])
        self._r = (self._r + 1) % (2 * _EDGES)
        return edge


class TouchFilter:
    """Touch-pad readings -> pressed / not pressed, with a tracked baseline and hysteresis.

    ``rises`` is True when a touch raises the reading (ESP32-S2/S3 ``TouchPad.read()``) and False when it
    lowers it (original ESP32). A touch counts once the reading moves ``threshold`` (a fraction, e.g.
    0.08) away from the baseline, and ends when it comes back within ``threshold * release`` (e.g. 0.6 of
    it). The baseline is the average of the first 8 readings and then follows slow drift
    (1/32 per reading) only while untouched. Integers only: the baseline is kept x16.
    """

    def __init__(self, threshold: float, rises: bool = True, release: float = 0.6) -> None:
        self._on = int(threshold * 1024)  # threshold in 1/1024ths of the baseline
        self._off = int(threshold * release * 1024)
        self._rises = rises
        self._base16 = 0
        self._n = 0
        self.pressed = False

    @property
    def baseline(self) -> int:
        return self._base16 >> 4

    def update(self, reading: int) -> bool:
        """Feed one reading; return the (hysteresis-filtered) pressed state."""
        if self._n < 8:  # calibrate: the pad must be untouched at boot
            self._base16 += reading << 1  # 8 readings x 2 = x16
            self._n += 1
            return False
        base = self._base16 >> 4
        delta = reading - base if self._rises else base - reading
        if self.pressed:
            if delta * 1024 < self._off * base:
                self.pressed = False
        elif delta * 1024 >= self._on * base:
            self.pressed = True
        if not self.pressed:
            self._base16 += ((reading << 4) - self._base16) >> 5
        return self.pressed
