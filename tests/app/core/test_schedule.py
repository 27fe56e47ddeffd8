"""Quiet hours (hugapp.core.schedule): the School-day / Home-day calendar, hold, gentle and missed,
across midnight and DST changes. Pure, with explicit clocks: every case states its own `now`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from hugapp.core.hugs import Hug, HugError, fold, play_for
from hugapp.core.schedule import Action, DayType, Decision, QuietMode, QuietWindow, Schedule
from hugproto.frames import GESTURE_TAP

LONDON = ZoneInfo("Europe/London")


def at(y: int, mo: int, d: int, h: int, mi: int = 0, tz: ZoneInfo = LONDON, fold: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=tz, fold=fold).timestamp()


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp()


def tap(n: int, hug_id: str, t: float, sender: str = "mum") -> Hug:
    return Hug(hug_id, sender, GESTURE_TAP, n, 120 * n, t)


def test_school_night_window_crosses_midnight() -> None:
    s = Schedule()
    assert date(2025, 3, 4).weekday() == 1  # a Tuesday
    until = at(2025, 3, 5, 7)
    assert s.decide(at(2025, 3, 4, 23), at(2025, 3, 4, 23), LONDON) == Decision(Action.HOLD_UNTIL, until)
    assert s.decide(at(2025, 3, 5, 6, 59), at(2025, 3, 5, 6, 59), LONDON) == Decision(
        Action.HOLD_UNTIL, until
    )
    assert s.decide(at(2025, 3, 5, 7), at(2025, 3, 5, 7), LONDON).action is Action.PLAY
    assert s.decide(at(2025, 3, 4, 20, 59), at(2025, 3, 4, 20, 59), LONDON).action is Action.PLAY
    assert s.decide(at(2025, 3, 4, 21), at(2025, 3, 4, 21), LONDON).action is Action.HOLD_UNTIL


def test_school_day_versus_home_day() -> None:
    s = Schedule()
    friday, saturday = date(2025, 3, 7), date(2025, 3, 8)
    assert (s.day_type(friday), s.day_type(saturday)) == (DayType.SCHOOL, DayType.HOME)
    assert s.decide(at(2025, 3, 7, 7, 30), at(2025, 3, 7, 7, 30), LONDON).action is Action.PLAY
    assert s.decide(at(2025, 3, 8, 7, 30), at(2025, 3, 8, 7, 30), LONDON) == Decision(
        Action.HOLD_UNTIL, at(2025, 3, 8, 8)
    )
    assert s.decide(at(2025, 3, 7, 10), at(2025, 3, 7, 10), LONDON).action is Action.PLAY_GENTLE
    assert s.decide(at(2025, 3, 8, 10), at(2025, 3, 8, 10), LONDON).action is Action.PLAY


def test_friday_night_runs_into_the_saturday_lie_in() -> None:
    s = Schedule()
    now = at(2025, 3, 7, 23)  # school night; Saturday is a home day, quiet until 08:00
    assert s.release_time(now, LONDON) == at(2025, 3, 8, 8)


def test_holiday_override_makes_a_weekday_a_home_day() -> None:
    bank_holiday = date(2025, 5, 5)
    assert bank_holiday.weekday() == 0
    plain = Schedule()
    s = Schedule(overrides={bank_holiday: DayType.HOME})
    assert plain.decide(at(2025, 5, 5, 7, 30), at(2025, 5, 5, 7, 30), LONDON).action is Action.PLAY
    assert s.decide(at(2025, 5, 5, 7, 30), at(2025, 5, 5, 7, 30), LONDON) == Decision(
        Action.HOLD_UNTIL, at(2025, 5, 5, 8)
    )
    assert s.decide(at(2025, 5, 5, 10), at(2025, 5, 5, 10), LONDON).action is Action.PLAY
    assert s.decide(at(2025, 5, 6, 10), at(2025, 5, 6, 10), LONDON).action is Action.PLAY_GENTLE
    # a Saturday school trip
    trip = Schedule(overrides={date(2025, 3, 8): DayType.SCHOOL})
    assert trip.decide(at(2025, 3, 8, 10), at(2025, 3, 8, 10), LONDON).action is Action.PLAY_GENTLE


def test_dst_spring_forward_night() -> None:
    """Europe/London, Sunday 30 March 2025: 01:00 GMT becomes 02:00 BST during a quiet night."""
    s = Schedule()  # Saturday and Sunday are home days: quiet 21:30-08:00
    sat_night = utc(2025, 3, 29, 23)  # 23:00 GMT
    assert s.release_time(sat_night, LONDON) == utc(2025, 3, 30, 7)  # 08:00 BST
    assert s.decide(sat_night, sat_night, LONDON) == Decision(Action.HOLD_UNTIL, utc(2025, 3, 30, 7))
    assert s.decide(utc(2025, 3, 30, 1, 30), utc(2025, 3, 30, 1, 30), LONDON).action is Action.HOLD_UNTIL
    assert s.decide(utc(2025, 3, 30, 6, 30), utc(2025, 3, 30, 6, 30), LONDON).action is Action.HOLD_UNTIL
    assert s.decide(utc(2025, 3, 30, 7, 30), utc(2025, 3, 30, 7, 30), LONDON).action is Action.PLAY  # 08:30
    # Sunday night into a school Monday (31 March): quiet until 07:00 BST = 06:00 UTC
    assert s.release_time(utc(2025, 3, 30, 22), LONDON) == utc(2025, 3, 31, 6)


def test_dst_fall_back_night() -> None:
    """Europe/London, Sunday 26 October 2025: 02:00 BST becomes 01:00 GMT; 01:xx happens twice."""
    s = Schedule()
    sat_night = utc(2025, 10, 25, 22)  # 23:00 BST
    assert s.release_time(sat_night, LONDON) == utc(2025, 10, 26, 8)  # 08:00 GMT
    assert s.decide(utc(2025, 10, 26, 7, 30), utc(2025, 10, 26, 7, 30), LONDON).action is Action.HOLD_UNTIL
    assert s.decide(utc(2025, 10, 26, 8), utc(2025, 10, 26, 8), LONDON).action is Action.PLAY


def test_window_ending_inside_the_repeated_hour() -> None:
    short = QuietWindow(time(22, 0), time(1, 30), QuietMode.HOLD)
    s = Schedule(windows={DayType.HOME: [short], DayType.SCHOOL: [short]})
    first_pass = at(2025, 10, 26, 1, 15, fold=0)  # 01:15 BST = 00:15 UTC
    second_pass = at(2025, 10, 26, 1, 15, fold=1)  # 01:15 GMT = 01:15 UTC
    assert s.release_time(first_pass, LONDON) == utc(2025, 10, 26, 0, 30)
    assert s.release_time(second_pass, LONDON) == utc(2025, 10, 26, 1, 30)  # not in the past


def test_held_hugs_are_released_at_window_end_with_their_count() -> None:
    s = Schedule()
    night = [tap(1, f"n{i}", t=at(2025, 3, 5, 6, 10 * i)) for i in range(3)]  # Wed 06:00, 06:10, 06:20
    decisions = [s.decide(h, h.pressed_at, LONDON) for h in night]
    release = at(2025, 3, 5, 7)
    assert all(d == Decision(Action.HOLD_UNTIL, release) for d in decisions)
    held = night[0]
    for h in night[1:]:
        held = fold(held, h)
    assert s.decide(held, release, LONDON) == Decision(Action.PLAY)
    assert held.count == 3
    assert held.ids() == ("n0", "n1", "n2")
    assert play_for(held, 1, False).repeat == 3


def test_old_hugs_are_missed_never_buzzed_at_night() -> None:
    s = Schedule()
    seven_am = at(2025, 3, 5, 7)
    assert s.decide(seven_am - 7 * 3600, seven_am, LONDON) == Decision(Action.MISSED)
    assert s.decide(seven_am - 6 * 3600, seven_am, LONDON) == Decision(Action.PLAY)  # the limit itself plays
    three_am = at(2025, 3, 5, 3)
    d = s.decide(three_am - 7 * 3600, three_am, LONDON)  # old, and night: held, never buzzed now
    assert d == Decision(Action.HOLD_UNTIL, seven_am)
    assert d.until is not None
    assert s.decide(three_am - 7 * 3600, d.until, LONDON).action is Action.MISSED
    ten_am = at(2025, 3, 5, 10)  # gentle hours: an old hug is missed too
    assert s.decide(ten_am - 7 * 3600, ten_am, LONDON).action is Action.MISSED
    assert (
        Schedule(missed_after_s=12 * 3600).decide(seven_am - 7 * 3600, seven_am, LONDON).action is Action.PLAY
    )


def test_gentle_window_from_settings() -> None:
    s = Schedule.from_settings(
        {
            "school_days": [0, 1, 2, 3, 4],
            "windows": {"school": [{"start": "21:00", "end": "07:00", "mode": "gentle"}], "home": []},
            "overrides": {"2025-03-05": "home"},
        }
    )
    assert s.decide(at(2025, 3, 4, 23), at(2025, 3, 4, 23), LONDON).action is Action.PLAY_GENTLE
    assert s.decide(at(2025, 3, 5, 6), at(2025, 3, 5, 6), LONDON).action is Action.PLAY  # overridden to home
    again = Schedule.from_settings(s.to_settings())
    assert again.to_settings() == s.to_settings()


@pytest.mark.parametrize(
    "settings",
    [
        None,
        {"bogus": 1},
        {"school_days": [7]},
        {"school_days": "mon"},
        {"windows": {"weekend": []}},
        {"windows": {"home": [{"start": "25:00", "end": "07:00"}]}},
        {"windows": {"home": [{"start": "21:00", "end": "21:00"}]}},
        {"windows": {"home": [{"start": "21:00", "end": "07:00", "mode": "loud"}]}},
        {"overrides": {"2025-13-01": "home"}},
        {"overrides": {"2025-03-01": "party"}},
        {"missed_after_s": -1},
        {"missed_after_s": "6h"},
    ],
)
def test_bad_schedule_settings_raise_hug_error(settings: object) -> None:
    with pytest.raises(HugError):
        Schedule.from_settings(settings)
