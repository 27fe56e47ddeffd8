"""Quiet hours: the School-day / Home-day calendar and what to do with a hug at a given moment.

Pure: every decision takes an explicit ``now`` (UTC epoch seconds) and a ``tzinfo``. The schedule is
stored as a setting (hugapp.core.hugstore) and applied where a hug is due on a band (playback).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hugapp.core.hugs import Hug, HugError, check_int, check_time

MAX_MISSED_S = 30 * 24 * 3600.0  # a month: later than that every hug is missed anyway
MISSED_AFTER_S = 6 * 3600.0
MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY = range(7)


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

        Held hugs are decided again at their release time (playback keeps them until then); a hug
        older than ``missed_after_s`` when it would play is MISSED, whatever the hour.
        """
        pressed_at = hug_or_pressed_at.pressed_at if isinstance(hug_or_pressed_at, Hug) else hug_or_pressed_at
        pressed_at = check_time("pressed_at", pressed_at)
        mode = self.mode_at(now, tz)
        if mode is QuietMode.HOLD:
            until = self.release_time(now, tz)
            assert until is not None
            return Decision(Action.HOLD_UNTIL, until)
        if self.too_old(pressed_at, now):
            return Decision(Action.MISSED)
        return Decision(Action.PLAY_GENTLE if mode is QuietMode.GENTLE else Action.PLAY)

    def too_old(self, pressed_at: float, now: float) -> bool:
        """A hug pressed at ``pressed_at`` is too old to buzz at ``now`` (or ever after): missed."""
        return now - pressed_at > self.missed_after_s

    # -- settings (stored by hugstore, edited in the UI) -----------------------------------------

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
        days = [check_int("school day", d, 0, 6) for d in days_list]
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
        if isinstance(missed, bool) or not isinstance(missed, int | float) or not 0 < missed <= MAX_MISSED_S:
            raise HugError(f"missed_after_s must be a number of seconds in 0..{MAX_MISSED_S:.0f}")
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


def local_timezone() -> tzinfo:
    """The phone's time zone with its DST rules: $TZ, else /etc/localtime, else today's offset."""
    names = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            names.append(target.split("zoneinfo/", 1)[1])
    for name in names:
        if name:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                return ZoneInfo(name)
    return datetime.now().astimezone().tzinfo or UTC


def _local(now: float, tz: tzinfo) -> datetime:
    """Naive local wall-clock time of UTC epoch ``now`` in ``tz``."""
    return datetime.fromtimestamp(check_time("now", now), tz).replace(tzinfo=None)


def _epoch(local: datetime, tz: tzinfo, not_before: float) -> float:
    """UTC epoch of naive local ``local``; of a repeated wall time (clocks going back), the first
    occurrence after ``not_before``; a skipped one (clocks going forward) maps past the gap."""
    first = local.replace(tzinfo=tz, fold=0).timestamp()
    if first > not_before:
        return first
    return max(local.replace(tzinfo=tz, fold=1).timestamp(), not_before)
