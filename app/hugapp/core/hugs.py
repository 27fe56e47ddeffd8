"""Hug semantics, pure: what a hug is, how it buzzes, when it buzzes, and what the sender hears back.

Nothing here does I/O, sleeps or reads a clock: every decision takes an explicit ``now`` (UTC epoch
seconds, float) and, where wall-clock time matters, a ``tzinfo`` (a ``zoneinfo.ZoneInfo``). The router
calls these and performs what they decide (store, relay, play on a band, notify).

- :class:`Hug`: one hug as it travels between phones (``to_payload``/``from_payload``, strict).
- :func:`play_for`: the band pattern for a hug (:class:`PlaySpec`, ready for a ``Play`` frame).
- :class:`HugBackTracker`: a press within 10 s of a hug being played answers it (once).
- :class:`Coalescer`: storms fold into a few buzzes, every press counted.
- :class:`Schedule`: quiet hours on School days and Home days; hold, play gently, or show as missed.
- :class:`Receipt` and :func:`advance`: SENT -> DELIVERED -> FELT, whatever order receipts arrive in.
- :func:`assign_signatures`: each sender in a circle gets its own haptic signature.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo
from enum import Enum, IntEnum
from typing import Any

from hugproto.frames import GESTURE_SQUEEZE, GESTURE_TAP, MAX_TAPS
from hugproto.patterns import BIG_HUG, HUG, HUG_BACK, MAX_REPEAT, NUM_SIGNATURES

PAYLOAD_VERSION = 1
MAX_ID_LEN = 64
MAX_COUNT = 100_000  # presses one hug may stand for; far beyond any storm a person can make
MAX_FOLDED = 1_000  # ids of folded hugs carried by one hug (for their receipts)
MAX_DURATION_MS = 0xFFFF  # a Press frame's u16

FULL_INTENSITY = 255
FELT_FLOOR = 64  # weakest intensity the router ever asks for: still clearly felt (= the softest squeeze)
GENTLE_PERCENT = 35
GENTLE_MAX_REPEAT = 2

HUG_BACK_WINDOW_S = 10.0

STORM_WINDOW_S = 60.0
STORM_MAX_BUZZES = 3

MISSED_AFTER_S = 6 * 3600.0
MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY = range(7)

_ID_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,%d}" % MAX_ID_LEN)
_GESTURE_NAMES = {GESTURE_TAP: "tap", GESTURE_SQUEEZE: "squeeze"}
_GESTURES_BY_NAME = {name: g for g, name in _GESTURE_NAMES.items()}
_PAYLOAD_KEYS = frozenset(
    {"v", "id", "from", "gesture", "value", "duration_ms", "pressed_at", "count", "back_of", "folded"}
)
_OPTIONAL_KEYS = frozenset({"back_of", "folded"})


class HugError(Exception):
    """A hug, a setting or a payload is invalid. The message says what and why; nothing changed."""


# --------------------------------------------------------------------------------------------------
# The hug


def _check_id(what: str, value: object) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise HugError(f"{what} must be 1..{MAX_ID_LEN} characters of [A-Za-z0-9_.:-], got {value!r:.80}")
    return value


def _check_int(what: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HugError(f"{what} must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise HugError(f"{what} must be {lo}..{hi}, got {value}")
    return value


def _check_time(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HugError(f"{what} must be a number (UTC epoch seconds), got {type(value).__name__}")
    try:
        t = float(value)
    except OverflowError:  # an integer beyond any float, e.g. 10**400 in JSON
        raise HugError(f"{what} is out of range") from None
    if not math.isfinite(t) or t <= 0:
        raise HugError(f"{what} must be a positive finite time, got {value!r}")
    return t


@dataclass(frozen=True, slots=True)
class Hug:
    """One hug: a press (or several folded into one) from ``sender``.

    ``value`` is the tap count (1..MAX_TAPS) for a tap, the intensity (1..255) for a squeeze.
    ``count`` is how many presses this hug stands for (more than 1 once a storm or a hold folded
    presses into it); ``folded`` holds the ids of the hugs folded into this one, so their receipts
    can be answered too. ``hug_back_of`` is the id of the hug this one answers.
    Construction validates every field and raises :class:`HugError`.
    """

    hug_id: str
    sender: str
    gesture: int
    value: int
    duration_ms: int
    pressed_at: float
    count: int = 1
    hug_back_of: str | None = None
    folded: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_id("hug id", self.hug_id)
        _check_id("sender", self.sender)
        if isinstance(self.gesture, bool) or self.gesture not in _GESTURE_NAMES:
            raise HugError(f"unknown gesture {self.gesture!r}")
        if self.gesture == GESTURE_TAP:
            _check_int("tap count", self.value, 1, MAX_TAPS)
        else:
            _check_int("squeeze intensity", self.value, 1, 255)
        _check_int("duration_ms", self.duration_ms, 0, MAX_DURATION_MS)
        object.__setattr__(self, "pressed_at", _check_time("pressed_at", self.pressed_at))
        _check_int("count", self.count, 1, MAX_COUNT)
        if self.hug_back_of is not None:
            _check_id("hug_back_of", self.hug_back_of)
        if not isinstance(self.folded, tuple):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise HugError("folded must be a tuple of hug ids")
        if len(self.folded) > MAX_FOLDED:
            raise HugError(f"a hug carries at most {MAX_FOLDED} folded ids, got {len(self.folded)}")
        for fid in self.folded:
            _check_id("folded hug id", fid)
        if self.count < 1 + len(self.folded):
            raise HugError(f"count {self.count} is less than the {1 + len(self.folded)} hugs it stands for")
        if len({self.hug_id, *self.folded}) != 1 + len(self.folded):
            raise HugError("folded ids must be distinct and differ from the hug id")

    def ids(self) -> tuple[str, ...]:
        """Every hug id this hug answers for (its own first)."""
        return (self.hug_id, *self.folded)

    def to_payload(self) -> dict[str, Any]:
        """A JSON-ready dict for the relay (sealed end to end by the envelope layer)."""
        payload: dict[str, Any] = {
            "v": PAYLOAD_VERSION,
            "id": self.hug_id,
            "from": self.sender,
            "gesture": _GESTURE_NAMES[self.gesture],
            "value": self.value,
            "duration_ms": self.duration_ms,
            "pressed_at": self.pressed_at,
            "count": self.count,
        }
        if self.hug_back_of is not None:
            payload["back_of"] = self.hug_back_of
        if self.folded:
            payload["folded"] = list(self.folded)
        return payload

    @classmethod
    def from_payload(cls, payload: object) -> Hug:
        """The hug in a relay payload. Anything unexpected raises :class:`HugError`."""
        if not isinstance(payload, Mapping):
            raise HugError(f"a hug payload must be an object, got {type(payload).__name__}")
        items: dict[object, object] = dict(payload)  # pyright: ignore[reportUnknownArgumentType]
        for key in items:
            if not isinstance(key, str) or key not in _PAYLOAD_KEYS:
                raise HugError(f"unexpected field {key!r:.40} in hug payload")
        missing = sorted(_PAYLOAD_KEYS - _OPTIONAL_KEYS - set(items))
        if missing:
            raise HugError(f"hug payload lacks {', '.join(missing)}")
        if items["v"] != PAYLOAD_VERSION or isinstance(items["v"], bool):
            raise HugError(f"unsupported hug payload version {items['v']!r:.20}")
        gesture_name = items["gesture"]
        if not isinstance(gesture_name, str) or gesture_name not in _GESTURES_BY_NAME:
            raise HugError(f"unknown gesture {gesture_name!r:.40}")
        folded_raw = items.get("folded", [])
        if not isinstance(folded_raw, list):
            raise HugError("folded must be a list of hug ids")
        folded_list: list[object] = folded_raw  # pyright: ignore[reportUnknownVariableType]
        if len(folded_list) > MAX_FOLDED:
            raise HugError(f"a hug carries at most {MAX_FOLDED} folded ids, got {len(folded_list)}")
        back_of = items.get("back_of")
        return cls(
            hug_id=_check_id("hug id", items["id"]),
            sender=_check_id("sender", items["from"]),
            gesture=_GESTURES_BY_NAME[gesture_name],
            value=_check_int("value", items["value"], 1, 255),
            duration_ms=_check_int("duration_ms", items["duration_ms"], 0, MAX_DURATION_MS),
            pressed_at=_check_time("pressed_at", items["pressed_at"]),
            count=_check_int("count", items["count"], 1, MAX_COUNT),
            hug_back_of=None if back_of is None else _check_id("back_of", back_of),
            folded=tuple(_check_id("folded hug id", f) for f in folded_list),
        )


def fold(into: Hug, other: Hug) -> Hug:
    """``into`` standing also for ``other``: counts add up, ``other``'s ids join ``folded``.

    The folded hug keeps ``into``'s id (the first of the run), takes the latest press's gesture,
    value and time, and stays a hug back if either was one. Folding the same hug twice is an error.
    """
    if into.sender != other.sender:
        raise HugError(f"cannot fold a hug from {other.sender} into one from {into.sender}")
    if set(into.ids()) & set(other.ids()):
        raise HugError(f"hug {other.hug_id} is already part of hug {into.hug_id}")
    count = into.count + other.count
    if count > MAX_COUNT:
        raise HugError(f"folded count {count} exceeds {MAX_COUNT}")
    latest = other if other.pressed_at >= into.pressed_at else into
    return replace(
        into,
        gesture=latest.gesture,
        value=latest.value,
        duration_ms=latest.duration_ms,
        pressed_at=latest.pressed_at,
        count=count,
        hug_back_of=into.hug_back_of if into.hug_back_of is not None else other.hug_back_of,
        folded=(*into.folded, *other.ids()),
    )


# --------------------------------------------------------------------------------------------------
# How a hug buzzes


@dataclass(frozen=True, slots=True)
class PlaySpec:
    """The fields of a band ``Play`` frame: pattern, sender signature, intensity 1..255, repeat 1..5."""

    pattern: int
    signature: int
    intensity: int
    repeat: int


def play_for(hug: Hug, signature: int, gentle: bool = False) -> PlaySpec:
    """How ``hug`` buzzes on the recipient's band.

    - a hug back plays HUG_BACK, a squeeze BIG_HUG, a tap HUG;
    - a squeeze's intensity is its strength (never below FELT_FLOOR); taps play at full intensity;
    - repeat: a tap count is replayed; a hug standing for N presses plays N times; the larger of the
      two wins, capped at MAX_REPEAT (the count itself is shown, not buzzed);
    - ``gentle`` (quiet hours in gentle mode) lowers the intensity to GENTLE_PERCENT, never below
      FELT_FLOOR, and plays at most GENTLE_MAX_REPEAT times.
    """
    _check_int("signature", signature, 0, NUM_SIGNATURES - 1)
    if hug.hug_back_of is not None:
        pattern = HUG_BACK
    elif hug.gesture == GESTURE_SQUEEZE:
        pattern = BIG_HUG
    else:
        pattern = HUG
    intensity = max(hug.value, FELT_FLOOR) if hug.gesture == GESTURE_SQUEEZE else FULL_INTENSITY
    taps = hug.value if hug.gesture == GESTURE_TAP else 1
    repeat = min(max(taps, hug.count), MAX_REPEAT)
    if gentle:
        intensity = max(intensity * GENTLE_PERCENT // 100, FELT_FLOOR)
        repeat = min(repeat, GENTLE_MAX_REPEAT)
    return PlaySpec(pattern, signature, intensity, repeat)


# --------------------------------------------------------------------------------------------------
# Hug back


class HugBackTracker:
    """Remembers the last hug played on one band; a press soon after it answers it.

    ``classify_press(now)`` returns the id of the hug to answer when the press came within
    HUG_BACK_WINDOW_S (inclusive) after that hug was played, else None. Each played hug is answered
    at most once; a press before the hug was played answers nothing.
    """

    def __init__(self, window_s: float = HUG_BACK_WINDOW_S) -> None:
        if not window_s > 0:
            raise HugError(f"hug-back window must be positive, got {window_s}")
        self.window_s = window_s
        self._last: tuple[str, float] | None = None
        self._answered = False

    @property
    def last(self) -> tuple[str, float] | None:
        """(hug_id, played_at) of the last hug played on this band, or None."""
        return self._last

    def played(self, hug_id: str, played_at: float) -> None:
        """The band played (buzzed) hug ``hug_id`` at ``played_at``."""
        _check_id("hug id", hug_id)
        if self._last is not None and self._last[0] == hug_id:
            self._last = (hug_id, played_at)  # the same hug again (a resend): still one answer
            return
        self._last = (hug_id, played_at)
        self._answered = False

    def classify_press(self, now: float) -> str | None:
        """The hug id a press at ``now`` answers, or None (then it is a new hug)."""
        if self._last is None or self._answered:
            return None
        hug_id, played_at = self._last
        if not 0 <= now - played_at <= self.window_s:
            return None
        self._answered = True
        return hug_id


# --------------------------------------------------------------------------------------------------
# Storms


@dataclass(slots=True)
class _Stream:
    buzzes: list[float] = field(default_factory=lambda: list[float]())
    pending: Hug | None = None


class Coalescer:
    """Rate-limits buzzes per (sender -> recipient) stream; excess presses fold into the next buzz.

    At most ``max_buzzes`` buzzes per rolling ``window_s`` per stream. A hug offered when the stream
    has used its budget is folded into the stream's one pending hug (so pending state is bounded: one
    hug per stream), which :meth:`due` releases as soon as the window allows. The sum of ``count``
    over everything returned equals the number of presses offered: every press is counted, none twice.
    The pending hug is also released at once if folding more would exceed MAX_FOLDED ids (a flood no
    person can make). Deterministic: decisions depend only on the hugs and the ``now`` values given.
    """

    def __init__(self, max_buzzes: int = STORM_MAX_BUZZES, window_s: float = STORM_WINDOW_S) -> None:
        if max_buzzes < 1 or not window_s > 0:
            raise HugError("a storm rule needs at least one buzz per positive window")
        self.max_buzzes = max_buzzes
        self.window_s = window_s
        self._streams: dict[tuple[str, str], _Stream] = {}

    def _expire(self, stream: _Stream, now: float) -> None:
        horizon = now - self.window_s
        stream.buzzes = [t for t in stream.buzzes if t > horizon]

    def offer(self, hug: Hug, now: float, recipient: str = "") -> list[Hug]:
        """The hugs to play now (possibly empty: then ``hug`` waits, folded, for :meth:`due`)."""
        key = (hug.sender, recipient)
        stream = self._streams.setdefault(key, _Stream())
        self._expire(stream, now)
        out: list[Hug] = []
        if stream.pending is not None:
            if len(stream.pending.folded) + len(hug.ids()) > MAX_FOLDED:
                out.append(stream.pending)  # bound hit: release the full one, start a new one
                stream.buzzes.append(now)
                stream.pending = hug
            else:
                stream.pending = fold(stream.pending, hug)
        elif len(stream.buzzes) < self.max_buzzes:
            stream.buzzes.append(now)
            return [hug]
        else:
            stream.pending = hug
        return out + self._release(stream, now)

    def _release(self, stream: _Stream, now: float) -> list[Hug]:
        if stream.pending is None or len(stream.buzzes) >= self.max_buzzes:
            return []
        out = stream.pending
        stream.pending = None
        stream.buzzes.append(now)
        return [out]

    def due(self, now: float) -> list[Hug]:
        """Pending hugs the rate window now allows, oldest stream first; forgets idle streams."""
        out: list[Hug] = []
        for key in sorted(self._streams):
            stream = self._streams[key]
            self._expire(stream, now)
            out.extend(self._release(stream, now))
            if stream.pending is None and not stream.buzzes:
                del self._streams[key]
        return out

    def next_due(self) -> float | None:
        """When :meth:`due` will next release something (call it then), or None if nothing waits."""
        times: list[float] = []
        for stream in self._streams.values():
            if stream.pending is not None:
                full = len(stream.buzzes) >= self.max_buzzes
                times.append(
                    stream.buzzes[-self.max_buzzes] + self.window_s if full else stream.pending.pressed_at
                )
        return min(times) if times else None

    def pending(self) -> list[Hug]:
        """The hugs waiting (one per stream), for display or to store."""
        out: list[Hug] = []
        for key in sorted(self._streams):
            hug = self._streams[key].pending
            if hug is not None:
                out.append(hug)
        return out

    def pending_count(self) -> int:
        """How many presses are waiting to be played (the sum of the pending hugs' counts)."""
        return sum(h.count for h in self.pending())


# --------------------------------------------------------------------------------------------------
# Quiet hours and the School-day / Home-day calendar


class DayType(Enum):
    SCHOOL = "school"
    HOME = "home"


class QuietMode(Enum):
    HOLD = "hold"  # keep hugs until the window ends, then deliver them with their count
    GENTLE = "gentle"  # play hugs now, gently


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """Local wall-clock quiet hours, ``start`` inclusive, ``end`` exclusive; may cross midnight.

    Each calendar day uses the windows of its own day type for all of its hours: a window 21:00-07:00
    makes 21:00-24:00 quiet on a day of that type, and 00:00-07:00 quiet on a day of that type.
    """

    start: time
    end: time
    mode: QuietMode = QuietMode.HOLD

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise HugError("quiet hours are local wall-clock times, without a time zone")
        if self.start == self.end:
            raise HugError(f"quiet window {self.start}-{self.end} is empty")

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def parts(self, day: date) -> list[tuple[datetime, datetime]]:
        """The naive local intervals this window covers on ``day`` (clipped to that day)."""
        start = datetime.combine(day, self.start)
        end = datetime.combine(day, self.end)
        midnight = datetime.combine(day, time())
        if not self.crosses_midnight:
            return [(start, end)]
        return [(midnight, end), (start, midnight + timedelta(days=1))]


class Action(Enum):
    PLAY = "play"
    PLAY_GENTLE = "play_gently"
    HOLD_UNTIL = "hold_until"
    MISSED = "missed"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a hug now; ``until`` (UTC epoch seconds) is set for HOLD_UNTIL only."""

    action: Action
    until: float | None = None


def _parse_hhmm(what: str, value: object) -> time:
    if not isinstance(value, str) or not re.fullmatch(r"\d\d:\d\d", value):
        raise HugError(f"{what} must be HH:MM, got {value!r:.40}")
    h, m = int(value[:2]), int(value[3:])
    if h > 23 or m > 59:
        raise HugError(f"{what} must be a time of day, got {value}")
    return time(h, m)


_DEFAULT_WINDOWS: dict[DayType, tuple[QuietWindow, ...]] = {
    DayType.SCHOOL: (
        QuietWindow(time(21, 0), time(7, 0), QuietMode.HOLD),
        QuietWindow(time(9, 0), time(15, 0), QuietMode.GENTLE),
    ),
    DayType.HOME: (QuietWindow(time(21, 30), time(8, 0), QuietMode.HOLD),),
}
_MAX_WINDOWS = 8
_MAX_HOLD_STEPS = 64  # release search bound: > a week of back-to-back windows


class Schedule:
    """One member's quiet hours: which days are School days, and each day type's quiet windows.

    Defaults: Monday-Friday are School days (quiet 21:00-07:00 hold, 09:00-15:00 gentle), Saturday
    and Sunday Home days (quiet 21:30-08:00 hold). ``overrides`` maps dates (holidays, inset days,
    a Saturday school trip) to a day type. A hug older than ``missed_after_s`` when it would be
    played is MISSED: shown in the app, never buzzed.
    """

    def __init__(
        self,
        windows: Mapping[DayType, Sequence[QuietWindow]] | None = None,
        school_days: Iterable[int] = (MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY),
        overrides: Mapping[date, DayType] | None = None,
        missed_after_s: float = MISSED_AFTER_S,
    ) -> None:
        chosen = dict(_DEFAULT_WINDOWS)
        if windows is not None:
            for day_type, ws in windows.items():
                if len(ws) > _MAX_WINDOWS:
                    raise HugError(f"at most {_MAX_WINDOWS} quiet windows per day type")
                chosen[day_type] = tuple(ws)
        self.windows: dict[DayType, tuple[QuietWindow, ...]] = chosen
        self.school_days = frozenset(school_days)
        if not self.school_days <= set(range(7)):
            raise HugError(f"school days are weekdays 0 (Monday)..6 (Sunday), got {sorted(self.school_days)}")
        self.overrides: dict[date, DayType] = dict(overrides or {})
        if not missed_after_s > 0:
            raise HugError(f"missed_after_s must be positive, got {missed_after_s}")
        self.missed_after_s = float(missed_after_s)

    # -- calendar --------------------------------------------------------------------------------

    def day_type(self, day: date) -> DayType:
        override = self.overrides.get(day)
        if override is not None:
            return override
        return DayType.SCHOOL if day.weekday() in self.school_days else DayType.HOME

    def _quiet_at(self, local: datetime) -> tuple[QuietMode | None, datetime | None]:
        """(strongest mode in force at naive local ``local``, end of the latest HOLD part containing it)."""
        mode: QuietMode | None = None
        hold_end: datetime | None = None
        for window in self.windows[self.day_type(local.date())]:
            for start, end in window.parts(local.date()):
                if start <= local < end:
                    if window.mode is QuietMode.HOLD:
                        mode = QuietMode.HOLD
                        hold_end = end if hold_end is None else max(hold_end, end)
                    elif mode is None:
                        mode = QuietMode.GENTLE
        return mode, hold_end

    def mode_at(self, now: float, tz: tzinfo) -> QuietMode | None:
        """The quiet mode in force at ``now`` (HOLD wins over GENTLE), or None outside quiet hours."""
        return self._quiet_at(_local(now, tz))[0]

    def release_time(self, now: float, tz: tzinfo) -> float | None:
        """When the HOLD in force at ``now`` ends (UTC epoch seconds), or None if nothing holds now.

        Back-to-back windows (an evening part ending at midnight, the next day's morning part) are
        followed to the end of the whole quiet stretch.
        """
        local = _local(now, tz)
        mode, end = self._quiet_at(local)
        if mode is not QuietMode.HOLD or end is None:
            return None
        for _ in range(_MAX_HOLD_STEPS):
            mode, next_end = self._quiet_at(end)
            if mode is not QuietMode.HOLD or next_end is None:
                break
            end = next_end
        return _epoch(end, tz, not_before=now)

    def decide(self, hug_or_pressed_at: Hug | float, now: float, tz: tzinfo) -> Decision:
        """PLAY, PLAY_GENTLE, HOLD_UNTIL(release time) or MISSED, for a hug at ``now``.

        Held hugs are decided again at their release time (the router keeps them until then); a hug
        older than ``missed_after_s`` when it would play is MISSED, whatever the hour.
        """
        pressed_at = hug_or_pressed_at.pressed_at if isinstance(hug_or_pressed_at, Hug) else hug_or_pressed_at
        pressed_at = _check_time("pressed_at", pressed_at)
        mode = self.mode_at(now, tz)
        if mode is QuietMode.HOLD:
            until = self.release_time(now, tz)
            assert until is not None
            return Decision(Action.HOLD_UNTIL, until)
        if now - pressed_at > self.missed_after_s:
            return Decision(Action.MISSED)
        return Decision(Action.PLAY_GENTLE if mode is QuietMode.GENTLE else Action.PLAY)

    # -- settings (stored by the router, edited in the UI) ---------------------------------------

    def to_settings(self) -> dict[str, Any]:
        return {
            "school_days": sorted(self.school_days),
            "windows": {
                dt.value: [
                    {"start": w.start.strftime("%H:%M"), "end": w.end.strftime("%H:%M"), "mode": w.mode.value}
                    for w in ws
                ]
                for dt, ws in self.windows.items()
            },
            "overrides": {d.isoformat(): t.value for d, t in sorted(self.overrides.items())},
            "missed_after_s": self.missed_after_s,
        }

    @classmethod
    def from_settings(cls, settings: object) -> Schedule:
        """A schedule from :meth:`to_settings` output; anything malformed raises :class:`HugError`."""
        if not isinstance(settings, Mapping):
            raise HugError("schedule settings must be an object")
        s: Mapping[str, object] = settings  # pyright: ignore[reportUnknownVariableType]
        unknown = set(s) - {"school_days", "windows", "overrides", "missed_after_s"}
        if unknown:
            raise HugError(f"unexpected schedule settings {sorted(unknown)}")
        days_raw = s.get("school_days", [MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY])
        if not isinstance(days_raw, list):
            raise HugError("school_days must be a list of weekdays 0..6")
        days_list: list[object] = days_raw  # pyright: ignore[reportUnknownVariableType]
        days = [_check_int("school day", d, 0, 6) for d in days_list]
        windows: dict[DayType, list[QuietWindow]] = {}
        windows_raw = s.get("windows", {})
        if not isinstance(windows_raw, dict):
            raise HugError("windows must be an object of day type -> list of windows")
        windows_map: dict[object, object] = windows_raw  # pyright: ignore[reportUnknownVariableType]
        for dt_name, ws in windows_map.items():
            day_type = _day_type(dt_name)
            if not isinstance(ws, list):
                raise HugError(f"windows of {day_type.value} days must be a list")
            ws_list: list[object] = ws  # pyright: ignore[reportUnknownVariableType]
            windows[day_type] = [_window(w) for w in ws_list]
        overrides: dict[date, DayType] = {}
        overrides_raw = s.get("overrides", {})
        if not isinstance(overrides_raw, dict):
            raise HugError("overrides must be an object of date -> day type")
        overrides_map: dict[object, object] = overrides_raw  # pyright: ignore[reportUnknownVariableType]
        for d, t in overrides_map.items():
            try:
                day = date.fromisoformat(d) if isinstance(d, str) else None
            except ValueError:
                day = None
            if day is None:
                raise HugError(f"override date must be YYYY-MM-DD, got {d!r:.40}")
            overrides[day] = _day_type(t)
        missed = s.get("missed_after_s", MISSED_AFTER_S)
        if isinstance(missed, bool) or not isinstance(missed, int | float) or not math.isfinite(missed):
            raise HugError("missed_after_s must be a number of seconds")
        return cls(windows, days, overrides, float(missed))


def _day_type(value: object) -> DayType:
    for t in DayType:
        if value == t.value:
            return t
    raise HugError(f"day type must be 'school' or 'home', got {value!r:.40}")


def _window(value: object) -> QuietWindow:
    if not isinstance(value, dict):
        raise HugError("a quiet window must be an object with start, end, mode")
    w: dict[str, object] = value  # pyright: ignore[reportUnknownVariableType]
    if set(w) - {"start", "end", "mode"}:
        raise HugError(f"unexpected quiet window fields {sorted(set(w) - {'start', 'end', 'mode'})}")
    mode_raw = w.get("mode", QuietMode.HOLD.value)
    modes = {m.value: m for m in QuietMode}
    if not isinstance(mode_raw, str) or mode_raw not in modes:
        raise HugError(f"quiet mode must be 'hold' or 'gentle', got {mode_raw!r:.40}")
    return QuietWindow(
        _parse_hhmm("start", w.get("start")), _parse_hhmm("end", w.get("end")), modes[mode_raw]
    )


def _local(now: float, tz: tzinfo) -> datetime:
    """Naive local wall-clock time of UTC epoch ``now`` in ``tz``."""
    return datetime.fromtimestamp(_check_time("now", now), tz).replace(tzinfo=None)


def _epoch(local: datetime, tz: tzinfo, not_before: float) -> float:
    """UTC epoch of naive local ``local``; of a repeated wall time (clocks going back), the first
    occurrence after ``not_before``; a skipped one (clocks going forward) maps past the gap."""
    first = local.replace(tzinfo=tz, fold=0).timestamp()
    if first > not_before:
        return first
    return max(local.replace(tzinfo=tz, fold=1).timestamp(), not_before)


# --------------------------------------------------------------------------------------------------
# Receipts


class Receipt(IntEnum):
    """What the sender knows about a hug it sent. Only ever moves forward."""

    SENT = 0
    DELIVERED = 1  # the partner's phone has it
    FELT = 2  # the partner's band played it (the sender's band ticks)


def advance(state: Receipt, event: Receipt) -> Receipt:
    """The state after receipt ``event`` (DELIVERED or FELT) arrives; out of order or repeated
    receipts never move a hug backwards (felt, then delivered, stays FELT)."""
    if event is Receipt.SENT:
        raise HugError("SENT is not a receipt; receipts are DELIVERED or FELT")
    return Receipt(max(state, event))


# --------------------------------------------------------------------------------------------------
# Signatures


def _preferred_signature(member_id: str) -> int:
    digest = hashlib.sha256(member_id.encode()).digest()
    return 1 + int.from_bytes(digest[:4], "big") % (NUM_SIGNATURES - 1)


def assign_signatures(member_ids: Iterable[str], chosen: Mapping[str, int] | None = None) -> dict[str, int]:
    """A haptic signature (1..NUM_SIGNATURES-1) for each member of a circle.

    Explicit choices in ``chosen`` (0..NUM_SIGNATURES-1; 0 = no motif) are honoured as they are.
    The others get distinct free signatures while any are left, each starting from a slot derived
    from its id and probing upwards, in id order, so the result does not depend on the order given.
    Pass the current assignment as ``chosen`` to keep everyone's signature when a member joins.
    Beyond NUM_SIGNATURES-1 members signatures repeat (the derived slot).
    """
    ids = sorted(set(member_ids))
    for mid in ids:
        _check_id("member id", mid)
    explicit = {
        mid: _check_int("signature", sig, 0, NUM_SIGNATURES - 1) for mid, sig in (chosen or {}).items()
    }
    out: dict[str, int] = {mid: explicit[mid] for mid in ids if mid in explicit}
    taken = set(out.values())
    for mid in ids:
        if mid in out:
            continue
        preferred = _preferred_signature(mid)
        sig = preferred
        for step in range(NUM_SIGNATURES - 1):
            candidate = 1 + (preferred - 1 + step) % (NUM_SIGNATURES - 1)
            if candidate not in taken:
                sig = candidate
                break
        out[mid] = sig
        taken.add(sig)
    return out
