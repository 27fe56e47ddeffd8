"""Hug semantics (hugapp.core.hugs): payloads, patterns, hug back, folding, receipts. Pure functions
with explicit clocks: every case states its own `now`. Quiet hours: test_schedule.py; the storm rule
the product runs: test_router.py."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hugapp.core.hugs import (
    FELT_FLOOR,
    MAX_FOLDED,
    Hug,
    HugBackTracker,
    HugError,
    PlaySpec,
    Receipt,
    advance,
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


# ---------------------------------------------------------------------------------------------- folding


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
