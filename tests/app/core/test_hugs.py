"""Hug semantics (hugapp.core.hugs): payloads, patterns, hug back, storms, quiet hours, receipts,
signatures. Pure functions with explicit clocks: every case states its own `now`."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hugapp.core.hugs import (
    FELT_FLOOR,
    MAX_FOLDED,
    Action,
    Coalescer,
    DayType,
    Decision,
    Hug,
    HugBackTracker,
    HugError,
    PlaySpec,
    QuietMode,
    QuietWindow,
    Receipt,
    Schedule,
    advance,
    assign_signatures,
    fold,
    play_for,
)
from hugproto.frames import GESTURE_SQUEEZE, GESTURE_TAP
from hugproto.patterns import BIG_HUG, BUFFER_SIZE, HUG, HUG_BACK, MAX_REPEAT, NUM_SIGNATURES, render

LONDON = ZoneInfo("Europe/London")
T0 = 1_750_000_000.0


def at(y: int, mo: int, d: int, h: int, mi: int = 0, tz: ZoneInfo = LONDON, fold: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=tz, fold=fold).timestamp()


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp()


def tap(
    n: int = 1,
    hug_id: str = "h1",
    sender: str = "mum",
    t: float = T0,
    count: int = 1,
    hug_back_of: str | None = None,
) -> Hug:
    return Hug(hug_id, sender, GESTURE_TAP, n, 120 * n, t, count=count, hug_back_of=hug_back_of)


def squeeze(value: int, hug_id: str = "s1", sender: str = "mum", t: float = T0) -> Hug:
    return Hug(hug_id, sender, GESTURE_SQUEEZE, value, 1500, t)


# ------------------------------------------------------------------------------------------- payloads


@pytest.mark.parametrize(
    "hug",
    [
        tap(3),
        squeeze(200),
        tap(1, hug_back_of="abc123"),
        Hug("a" * 64, "dad", GESTURE_TAP, 2, 0, T0 + 0.25, count=4, folded=("b1", "b2")),
    ],
)
def test_payload_round_trip(hug: Hug) -> None:
    payload = hug.to_payload()
    assert Hug.from_payload(payload) == hug
    assert payload["v"] == 1


def _good() -> dict[str, object]:
    return tap(2).to_payload()


def _with(**changes: object) -> dict[str, object]:
    p = _good()
    p.update(changes)
    return p


def _without(key: str) -> dict[str, object]:
    p = _good()
    del p[key]
    return p


GARBAGE: list[object] = [
    None,
    "hug",
    [1, 2, 3],
    {},
    _without("id"),
    _without("pressed_at"),
    _without("count"),
    _with(extra=1),
    _with(v=2),
    _with(v=True),
    _with(id=""),
    _with(id="x" * 65),
    _with(id="no spaces"),
    _with(id=7),
    _with(**{"from": "../etc"}),
    _with(gesture="wave"),
    _with(gesture=1),
    _with(value=0),
    _with(value=6),  # a tap count above MAX_TAPS
    _with(value=True),
    _with(value=2.0),
    _with(value="2"),
    _with(gesture="squeeze", value=256),
    _with(duration_ms=-1),
    _with(duration_ms=70_000),
    _with(pressed_at=math.nan),
    _with(pressed_at=math.inf),
    _with(pressed_at=-5),
    _with(pressed_at="yesterday"),
    _with(count=0),
    _with(count=10**9),
    _with(back_of=""),
    _with(back_of=5),
    _with(folded="h2"),
    _with(folded=["h2"]),  # count 1 cannot stand for two hugs
    _with(count=3, folded=["h2", "h2"]),
    _with(count=2, folded=["h1"]),  # folded into itself
    _with(count=5000, folded=[f"f{i}" for i in range(MAX_FOLDED + 1)]),
    {1: 2},
]


@pytest.mark.parametrize("payload", GARBAGE)
def test_payload_garbage_is_rejected_with_hug_error(payload: object) -> None:
    with pytest.raises(HugError) as err:
        Hug.from_payload(payload)
    assert str(err.value)  # a clear message, never empty


def test_constructing_an_invalid_hug_raises() -> None:
    with pytest.raises(HugError):
        Hug("h", "mum", 3, 1, 0, T0)
    with pytest.raises(HugError):
        Hug("h", "mum", GESTURE_TAP, 0, 0, T0)


# -------------------------------------------------------------------------------------------- play_for


def test_tap_count_is_replayed() -> None:
    for n in range(1, 6):
        assert play_for(tap(n), 2, False) == PlaySpec(HUG, 2, 255, n)


def test_squeeze_is_a_big_hug_with_its_strength() -> None:
    assert play_for(squeeze(200), 1, False) == PlaySpec(BIG_HUG, 1, 200, 1)
    assert play_for(squeeze(255), 1, False).intensity == 255
    assert play_for(squeeze(64), 1, False).intensity == 64
    assert play_for(squeeze(10), 1, False).intensity == FELT_FLOOR  # never below what is felt
    assert play_for(squeeze(100), 1, False).intensity < play_for(squeeze(200), 1, False).intensity


def test_hug_back_pattern() -> None:
    spec = play_for(tap(2, hug_back_of="h0"), 3, False)
    assert (spec.pattern, spec.repeat) == (HUG_BACK, 2)


def test_coalesced_hug_plays_its_count_capped() -> None:
    assert play_for(tap(1, count=2), 0, False).repeat == 2
    assert play_for(tap(1, count=27), 0, False).repeat == MAX_REPEAT
    assert play_for(tap(4, count=2), 0, False).repeat == 4  # the tap count wins when larger


def test_gentle_lowers_intensity_but_stays_felt() -> None:
    loud = play_for(tap(3), 1, False)
    soft = play_for(tap(3), 1, True)
    assert soft.intensity == 255 * 35 // 100
    assert FELT_FLOOR <= soft.intensity < loud.intensity
    assert play_for(squeeze(100), 1, True).intensity == FELT_FLOOR  # 35 would not be felt
    assert soft.repeat == 2  # gentle plays shorter too
    assert soft.pattern == loud.pattern


def test_bad_signature_is_refused() -> None:
    with pytest.raises(HugError):
        play_for(tap(1), NUM_SIGNATURES, False)
    with pytest.raises(HugError):
        play_for(tap(1), -1, False)


def test_every_play_spec_renders_on_the_band() -> None:
    """hugproto.patterns.render accepts whatever play_for asks for (all signatures, worst cases)."""
    out = bytearray(BUFFER_SIZE)
    hugs = [tap(5), tap(1, count=99), squeeze(1), squeeze(255), tap(5, hug_back_of="x"), squeeze(90)]
    for hug, sig, gentle in itertools.product(hugs, range(NUM_SIGNATURES), (False, True)):
        spec = play_for(hug, sig, gentle)
        assert render(spec.pattern, spec.signature, spec.intensity, spec.repeat, out) > 0


# -------------------------------------------------------------------------------------------- hug back


def test_press_within_10_s_answers_the_hug() -> None:
    tracker = HugBackTracker()
    tracker.played("h1", 100.0)
    assert tracker.classify_press(110.0) == "h1"


def test_press_after_11_s_is_a_new_hug() -> None:
    tracker = HugBackTracker()
    tracker.played("h1", 100.0)
    assert tracker.classify_press(111.0) is None
    assert tracker.classify_press(110.0) == "h1"  # a late press did not use up the answer


def test_one_answer_per_received_hug() -> None:
    tracker = HugBackTracker()
    tracker.played("h1", 100.0)
    assert tracker.classify_press(103.0) == "h1"
    assert tracker.classify_press(104.0) is None  # a second press is a new hug
    tracker.played("h1", 105.0)  # the same hug played again (a resend): still answered
    assert tracker.classify_press(106.0) is None
    tracker.played("h2", 200.0)
    assert tracker.classify_press(209.5) == "h2"


def test_press_before_the_hug_or_with_no_hug_answers_nothing() -> None:
    tracker = HugBackTracker()
    assert tracker.classify_press(50.0) is None
    tracker.played("h1", 100.0)
    assert tracker.classify_press(99.0) is None
    assert tracker.classify_press(100.0) == "h1"
    assert tracker.last == ("h1", 100.0)


# ---------------------------------------------------------------------------------------------- storms


def _presses(times: list[float], sender: str = "kid") -> list[Hug]:
    return [tap(1, hug_id=f"p{i}", sender=sender, t=t) for i, t in enumerate(times)]


def _run(coalescer: Coalescer, hugs: list[Hug], until: float) -> list[tuple[float, Hug]]:
    """Offer each hug at its press time, calling due() whenever it says so; return (time, buzz)."""
    played: list[tuple[float, Hug]] = []

    def release_until(t: float) -> None:
        for _ in range(len(hugs) + 1):  # each due() call must release something
            nd = coalescer.next_due()
            if nd is None or nd > t:
                return
            out = coalescer.due(nd)
            assert out, f"next_due() said {nd} but due({nd}) released nothing"
            played.extend((nd, h) for h in out)

    for hug in hugs:
        release_until(hug.pressed_at)
        played.extend((hug.pressed_at, h) for h in coalescer.offer(hug, hug.pressed_at))
    release_until(until)
    return played


def test_storm_of_30_presses_in_a_minute_is_a_few_buzzes_every_press_counted() -> None:
    hugs = _presses([T0 + 2 * i for i in range(30)])
    played = _run(Coalescer(), hugs, T0 + 3600)
    assert len(played) <= 4
    assert sum(h.count for _, h in played) == 30
    ids = [i for _, h in played for i in h.ids()]
    assert sorted(ids) == sorted(h.hug_id for h in hugs)  # each press exactly once
    assert played[-1][0] == T0 + 60  # the folded rest plays as soon as the minute allows
    assert played[-1][1].count == 27


def test_pending_and_next_due() -> None:
    c = Coalescer(max_buzzes=3, window_s=60)
    hugs = _presses([T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4])
    assert [len(c.offer(h, h.pressed_at)) for h in hugs] == [1, 1, 1, 0, 0]
    assert c.pending_count() == 2
    assert [h.count for h in c.pending()] == [2]
    assert c.next_due() == T0 + 60
    assert c.due(T0 + 59.9) == []
    released = c.due(T0 + 60)
    assert [(h.hug_id, h.count, h.folded) for h in released] == [("p3", 2, ("p4",))]
    assert c.pending_count() == 0
    assert c.next_due() is None


def test_streams_are_independent_per_sender_and_recipient() -> None:
    c = Coalescer(max_buzzes=1, window_s=60)
    assert len(c.offer(tap(1, "a1", "mum", T0), T0)) == 1
    assert len(c.offer(tap(1, "b1", "dad", T0), T0)) == 1
    assert len(c.offer(tap(1, "a2", "mum", T0 + 1), T0 + 1, recipient="gran")) == 1
    assert c.offer(tap(1, "a3", "mum", T0 + 2), T0 + 2) == []


def test_pending_is_bounded_to_one_hug_per_stream() -> None:
    c = Coalescer(max_buzzes=1, window_s=60)
    played = c.offer(tap(1, "p0", "kid", T0), T0)
    for i in range(1, MAX_FOLDED + 3):
        played += c.offer(tap(1, f"p{i}", "kid", T0 + i * 0.01), T0 + i * 0.01)
        assert len(c.pending()) <= 1
    # the bound released the full pending hug early; still nothing lost
    played += c.due(T0 + 10_000)
    assert sum(h.count for h in played) == MAX_FOLDED + 3


@given(st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), min_size=1, max_size=120))
def test_storm_rules_hold_for_any_press_times(offsets: list[float]) -> None:
    hugs = _presses(sorted(T0 + o for o in offsets))
    c = Coalescer()
    played = _run(c, hugs, T0 + 10_000)
    assert sum(h.count for _, h in played) == len(hugs)
    assert c.pending_count() == 0
    times = [t for t, _ in played]
    for i, t in enumerate(times):  # never more than 3 buzzes in any rolling minute
        assert sum(1 for u in times[i:] if u < t + 60) <= 3
    again = _run(Coalescer(), hugs, T0 + 10_000)
    assert again == played  # deterministic


def test_fold_rules() -> None:
    a = tap(1, "a", t=T0)
    b = squeeze(180, "b", t=T0 + 5)
    ab = fold(a, b)
    assert (ab.hug_id, ab.count, ab.folded, ab.gesture, ab.value, ab.pressed_at) == (
        "a",
        2,
        ("b",),
        GESTURE_SQUEEZE,
        180,
        T0 + 5,
    )
    with pytest.raises(HugError):
        fold(ab, b)  # never counted twice
    with pytest.raises(HugError):
        fold(a, tap(1, "z", sender="dad"))


# --------------------------------------------------------------------------------------- quiet hours


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


# ---------------------------------------------------------------------------------------------- receipts


def test_receipts_in_order() -> None:
    state = Receipt.SENT
    state = advance(state, Receipt.DELIVERED)
    assert state is Receipt.DELIVERED
    assert advance(state, Receipt.FELT) is Receipt.FELT


@pytest.mark.parametrize(
    "events",
    [list(p) for p in itertools.permutations([Receipt.DELIVERED, Receipt.FELT, Receipt.DELIVERED])],
)
def test_receipts_out_of_order_end_in_felt(events: list[Receipt]) -> None:
    state = Receipt.SENT
    for e in events:
        state = advance(state, e)
    assert state is Receipt.FELT


def test_felt_never_goes_back_and_sent_is_not_an_event() -> None:
    assert advance(Receipt.FELT, Receipt.DELIVERED) is Receipt.FELT
    assert advance(Receipt.DELIVERED, Receipt.DELIVERED) is Receipt.DELIVERED
    with pytest.raises(HugError):
        advance(Receipt.DELIVERED, Receipt.SENT)


# -------------------------------------------------------------------------------------------- signatures


def test_signatures_are_distinct_and_stable() -> None:
    members = ["mum", "dad", "gran", "grandad", "kid", "aunt", "uncle"]
    sigs = assign_signatures(members)
    assert set(sigs) == set(members)
    assert sorted(sigs.values()) == list(range(1, NUM_SIGNATURES))  # 7 members, 7 distinct signatures
    assert assign_signatures(reversed(members)) == sigs


def test_explicit_choices_are_honoured_and_joining_keeps_signatures() -> None:
    sigs = assign_signatures(["mum", "kid"], chosen={"mum": 5})
    assert sigs["mum"] == 5
    assert sigs["kid"] != 5
    assert 1 <= sigs["kid"] < NUM_SIGNATURES
    joined = assign_signatures(["mum", "kid", "gran"], chosen=sigs)
    assert {k: joined[k] for k in sigs} == sigs
    assert joined["gran"] not in sigs.values()


def test_more_members_than_signatures_still_get_valid_ones() -> None:
    sigs = assign_signatures([f"m{i}" for i in range(12)])
    assert all(1 <= s < NUM_SIGNATURES for s in sigs.values())
    assert len(set(sigs.values())) == NUM_SIGNATURES - 1


def test_bad_signature_choices_raise() -> None:
    with pytest.raises(HugError):
        assign_signatures(["mum"], chosen={"mum": NUM_SIGNATURES})
    with pytest.raises(HugError):
        assign_signatures(["not ok"])
