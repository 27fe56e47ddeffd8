"""The router on a real store with an injected clock, fake bands and no network: what each band
was asked to play, what was stored, which receipts go out."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from collections import Counter
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hugapp.core import hugs
from hugapp.core import relaystore as rs
from hugapp.core.hugs import Hug, HugError, Receipt
from hugapp.core.notify import DesktopNotifier
from hugapp.core.playback import MAX_PLAYS_IN_FLIGHT, RESEND_PLAY_AFTER_S
from hugapp.core.relay import Incoming
from hugapp.core.router import RECEIPT_TYPE, Router
from hugapp.core.schedule import DayType, QuietMode, QuietWindow, Schedule
from hugapp.core.store import Store
from hugapp.dev.world import NO_QUIET_HOURS
from hugproto import frames, patterns

TZ = ZoneInfo("Europe/London")
BAND = "C0:FF:EE:00:00:01"
OTHER_BAND = "C0:FF:EE:00:00:02"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeBands:
    def __init__(self) -> None:
        self.up: set[str] = set()
        self.played: list[tuple[str, hugs.PlaySpec, int]] = []
        self.wanted: list[str] = []

    def connected(self, band_id: str) -> bool:
        return band_id in self.up

    def want(self, band_id: str) -> None:
        self.wanted.append(band_id)

    async def play(self, band_id: str, spec: hugs.PlaySpec, token: int) -> None:
        self.played.append((band_id, spec, token))


class Rig:
    def __init__(self, tmp: Path, now: float, bands: tuple[str, ...] = (BAND,)) -> None:
        self.clock = Clock(now)
        self.store = Store(tmp / "phone.sqlite3", clock=self.clock)
        self.me = rs.ensure_identity(self.store, "Mum")
        for b in bands:
            self.store.save_band(b, "band", bytes(16 * [1]))
        self.bands = FakeBands()
        self.bands.up.update(bands)
        self.notifier = DesktopNotifier()
        self.router = self.new_router()
        with self.store.transaction() as db:
            rs.save_link(db, "l" * 32, bytes(32), "family", now)
            rs.save_member(db, rs.Member("l" * 32, "a" * 32, "Mia", "b" * 32, bytes(32), 3), now)
        self.msg = 0

    def new_router(self) -> Router:
        return Router(self.store, self.me, self.bands, self.notifier, clock=self.clock, tz=TZ)

    def incoming(self, hug: Hug, type_: str = "hug", payload: dict[str, object] | None = None) -> None:
        self.msg += 1
        msg = Incoming(
            "l" * 32, "a" * 32, f"{self.msg:032x}", type_, payload or hug.to_payload(), self.clock()
        )
        asyncio.run(self.router.on_relay_message(msg))

    def deliver(self) -> float | None:
        return asyncio.run(self.router.deliver())

    def felt(self, band: str, token: int) -> None:
        self.router.on_felt(band, token)

    def outbox(self, type_: str) -> list[rs.OutboxItem]:
        return [i for i in rs.outbox_items(self.store) if i.type == type_]


def hug(n: int, t: float) -> Hug:
    return Hug(
        hug_id=f"h{n}", sender="a" * 32, gesture=frames.GESTURE_TAP, value=1, duration_ms=0, pressed_at=t
    )


def test_incoming_hug_plays_once_with_the_sender_signature_and_felt_goes_back(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))  # a Saturday afternoon: no quiet hours
    r.incoming(Hug("h1", "a" * 32, frames.GESTURE_TAP, 3, 0, r.clock.t))
    r.deliver()
    assert len(r.bands.played) == 1
    band, spec, token = r.bands.played[0]
    assert (band, spec.pattern, spec.signature, spec.repeat) == (BAND, patterns.HUG, 3, 3)
    r.deliver()  # nothing new: no second buzz
    assert len(r.bands.played) == 1
    r.felt(BAND, token)
    receipts = r.outbox(RECEIPT_TYPE)
    assert [(i.recipient, i.payload) for i in receipts] == [("a" * 32, {"hug": "h1", "state": "felt"})]
    r.felt(BAND, token)  # a repeated Felt adds nothing
    assert len(r.outbox(RECEIPT_TYPE)) == 1
    assert [n.title for n in r.notifier.notifications()] == ["Hug from Mia"]


def test_same_message_twice_and_bad_payloads_change_nothing(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    h = hug(1, r.clock.t)
    r.incoming(h)
    r.incoming(h)  # the same hug again under another message id (a resend): stored once
    assert len([e for e in r.router.history() if e.direction == "in"]) == 1
    before = r.store.db.execute("SELECT COUNT(*) FROM plays").fetchone()[0]
    r.incoming(h, payload={"v": 1, "id": "x", "gesture": "poke"})
    r.incoming(h, type_=RECEIPT_TYPE, payload={"hug": 5})
    assert r.store.db.execute("SELECT COUNT(*) FROM plays").fetchone()[0] == before
    assert len(r.router.history()) == 1


def test_storm_of_thirty_presses_becomes_a_few_buzzes_every_press_counted(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    tokens: set[int] = set()
    for i in range(30):  # thirty presses in a minute
        r.incoming(hug(i, r.clock.t))
        r.deliver()
        for _band, _spec, token in r.bands.played:
            if token not in tokens:
                tokens.add(token)
                r.felt(BAND, token)
        r.clock.t += 2
    r.clock.t += 61
    r.deliver()
    for _band, _spec, token in r.bands.played:
        if token not in tokens:
            tokens.add(token)
            r.felt(BAND, token)
    assert 2 <= len(r.bands.played) <= 4, [s.repeat for _b, s, _t in r.bands.played]
    felt = r.store.db.execute("SELECT COUNT(*) FROM plays WHERE state = 'felt'").fetchone()[0]
    assert felt == 30, "every press was played (folded) and answered"
    assert len(r.outbox(RECEIPT_TYPE)) == 30


def test_storm_rule_is_a_setting_and_a_bad_one_changes_nothing(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    with pytest.raises(HugError, match="at least one buzz"):
        r.router.set_storm_rule(0, 60)
    with pytest.raises(HugError):
        r.router.set_storm_rule(3, 0)
    assert r.router.storm_rule() == (3, 60)
    r.router.set_storm_rule(1, 10)
    r.router = r.new_router()  # a restarted app keeps the setting
    assert r.router.storm_rule() == (1, 10)
    for i in range(3):  # three presses a second apart: one buzz, the other two fold into the next
        r.incoming(hug(i, r.clock.t))
        r.deliver()
        r.clock.t += 1
    assert len(r.bands.played) == 1
    r.clock.t += 10
    r.deliver()
    assert [spec.repeat for _b, spec, _t in r.bands.played] == [1, 2]


def test_quiet_hours_hold_until_morning_then_play_with_the_count(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-23T22:30"))  # a Monday night: school-day hold 21:00-07:00
    for i in range(3):
        r.incoming(hug(i, r.clock.t))
        r.clock.t += 60
    next_at = r.deliver()
    assert r.bands.played == []
    assert next_at == at("2026-11-24T07:00")
    r.clock.t = at("2026-11-24T07:00")
    r.deliver()
    assert len(r.bands.played) == 1, "held hugs arrive together"
    assert r.bands.played[0][1].repeat == 3, "with their count"


def test_gentle_window_lowers_intensity(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-23T10:00"))  # Monday, at school: gentle 09:00-15:00
    r.incoming(Hug("h1", "a" * 32, frames.GESTURE_SQUEEZE, 255, 1500, r.clock.t))
    r.deliver()
    spec = r.bands.played[0][1]
    assert spec.pattern == patterns.BIG_HUG
    assert spec.intensity < 255


def test_very_old_hug_is_missed_not_buzzed(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    r.router.set_schedule(NO_QUIET_HOURS)
    r.incoming(hug(1, r.clock.t - 7 * 3600))  # delivered seven hours late
    r.deliver()
    assert r.bands.played == []
    assert r.router.history()[0].missed
    assert [n.title for n in r.notifier.notifications()] == ["Missed hug from Mia"]


def test_band_away_then_back_and_restart_resends_with_the_same_token(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    r.bands.up.clear()
    r.incoming(hug(1, r.clock.t))
    r.deliver()
    assert r.bands.played == []
    r.bands.up.add(BAND)
    r.deliver()
    first = r.bands.played[0][2]
    r.router = r.new_router()  # the companion was killed before the Felt arrived
    r.clock.t += 30
    r.deliver()
    assert [t for _b, _s, t in r.bands.played] == [first, first], (
        "resent with the same token: the band buzzes once"
    )
    r.felt(BAND, first)
    r.clock.t += 60
    r.deliver()
    assert len(r.bands.played) == 2


def test_a_band_that_reconnects_gets_its_unconfirmed_play_again_at_once(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    r.incoming(hug(1, r.clock.t))
    r.deliver()
    token = r.bands.played[0][2]
    r.clock.t += 2
    r.deliver()
    assert len(r.bands.played) == 1, "not yet due for a resend"
    r.router.band_connected(BAND)  # the link dropped and came back: its Felt may be lost
    r.deliver()
    assert [t for _b, _s, t in r.bands.played] == [token, token]
    r.deliver()
    assert len(r.bands.played) == 2, "once per reconnection"


def test_no_more_plays_in_flight_than_the_band_can_queue(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    r.router.set_schedule(NO_QUIET_HOURS)
    for seq in range(1, 7):  # six hugs from this band, felt one by one: six ticks, none confirmed yet
        r.store.record_press(BAND, seq, frames.GESTURE_TAP, 1, 80, 0)
        r.router.route_presses()
        out = next(e for e in r.router.history() if e.direction == "out" and e.receipt is not Receipt.FELT)
        r.incoming(out.hug, type_=RECEIPT_TYPE, payload={"hug": out.hug_id, "state": "felt"})
        r.deliver()
        r.clock.t += 1
    tokens = [t for _b, _s, t in r.bands.played]
    assert len(set(tokens)) == MAX_PLAYS_IN_FLIGHT, "the band queues four: the rest wait"
    pending = r.store.db.execute("SELECT COUNT(*) FROM plays WHERE state = 'pending'").fetchone()[0]
    assert pending == 1, "and the receipts still waiting share one tick"
    r.felt(BAND, tokens[0])
    r.deliver()
    assert len({t for _b, _s, t in r.bands.played}) == MAX_PLAYS_IN_FLIGHT + 1


def test_clock_set_back_does_not_delay_a_resend(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    r.incoming(hug(1, r.clock.t))
    r.deliver()
    r.clock.t -= 600  # the phone's clock is corrected by ten minutes
    r.deliver()
    r.clock.t += RESEND_PLAY_AFTER_S + 1
    r.deliver()
    assert len(r.bands.played) == 2, "resent after 20 s of the new clock, not after ten minutes"


def test_clock_set_back_does_not_delay_a_hug_waiting_for_its_band(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    r.bands.up.clear()  # the band is away when the hug arrives
    r.incoming(hug(1, r.clock.t))
    r.deliver()
    r.clock.t -= 100  # the phone's clock is corrected by 100 s
    r.bands.up.add(BAND)
    r.deliver()
    assert len(r.bands.played) == 1, "played when the band is back, not 100 s later"


def test_clock_set_back_while_the_app_was_closed_does_not_delay_a_hug(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    r.bands.up.clear()
    r.incoming(hug(1, r.clock.t))
    r.clock.t -= 100
    r.router = r.new_router()  # the app starts again after the correction
    r.bands.up.add(BAND)
    r.deliver()
    assert len(r.bands.played) == 1


def test_clock_set_back_keeps_a_quiet_hours_hold(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-23T22:30"))  # a Monday night: school-day hold 21:00-07:00
    r.incoming(hug(1, r.clock.t))
    assert r.deliver() == at("2026-11-24T07:00")
    r.clock.t -= 600
    assert r.deliver() == at("2026-11-24T07:00"), "held until the morning, by the clock on the wall"
    assert r.bands.played == []
    r.clock.t = at("2026-11-24T07:00")
    r.deliver()
    assert len(r.bands.played) == 1


def test_felt_receipts_arriving_together_make_one_tick(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    r.router.set_schedule(NO_QUIET_HOURS)
    r.bands.up.clear()  # the band is away while the partner feels three hugs
    for seq in (1, 2, 3):
        r.store.record_press(BAND, seq, frames.GESTURE_TAP, 1, 80, 0)
        r.clock.t += 1
    assert r.router.route_presses() == 3
    for out in [e for e in r.router.history() if e.direction == "out"]:
        r.incoming(out.hug, type_=RECEIPT_TYPE, payload={"hug": out.hug_id, "state": "felt"})
    assert all(e.receipt is Receipt.FELT for e in r.router.history() if e.direction == "out")
    r.bands.up.add(BAND)
    r.deliver()
    ticks = [s for _b, s, _t in r.bands.played if s.pattern == patterns.FELT_TICK]
    assert len(ticks) == 1


def test_press_routes_to_local_band_and_circle_once_with_hug_back(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"), bands=(BAND, OTHER_BAND))
    r.router.set_schedule(NO_QUIET_HOURS)
    r.incoming(hug(1, r.clock.t))
    r.deliver()
    for band, _spec, token in list(r.bands.played):
        r.felt(band, token)
    r.clock.t += 4  # a press 4 s after feeling it: a hug back
    r.store.record_press(BAND, 7, frames.GESTURE_TAP, 1, 80, 0)
    assert r.router.route_presses() == 1
    assert r.router.route_presses() == 0, "a press is routed once"
    out = [e for e in r.router.history() if e.direction == "out"]
    assert len(out) == 1
    assert out[0].hug.hug_back_of == "h1"
    sent = r.outbox("hug")
    assert [i.recipient for i in sent] == ["a" * 32]
    assert json.loads(json.dumps(sent[0].payload))["back_of"] == "h1"
    r.deliver()
    other = [(b, s) for b, s, _t in r.bands.played if b == OTHER_BAND and s.pattern == patterns.HUG_BACK]
    assert len(other) == 1, "the other band here plays the hug back too"
    assert out[0].receipt is Receipt.DELIVERED


def test_relay_ack_marks_the_hug_delivered_and_nothing_else(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    for seq in (1, 2):
        r.store.record_press(BAND, seq, frames.GESTURE_TAP, 1, 80, 0)
    assert r.router.route_presses() == 2
    first, second = r.outbox("hug")
    r.router.on_delivered("f" * 32, "a" * 32)  # not a message of ours
    r.router.on_delivered(first.msg_id, "a" * 32)
    receipts = {e.hug.hug_id: e.receipt for e in r.router.history() if e.direction == "out"}
    assert receipts == {first.payload["id"]: Receipt.DELIVERED, second.payload["id"]: Receipt.SENT}


def test_schedule_settings_persist(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    window = QuietWindow(time(20, 0), time(6, 30), QuietMode.GENTLE)
    r.router.set_schedule(Schedule(windows={DayType.HOME: (window,)}))
    assert r.new_router().schedule().to_settings() == r.router.schedule().to_settings()


def test_hug_from_the_phone_screen_goes_to_the_circle_and_the_bands_here(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    r.router.set_schedule(NO_QUIET_HOURS)
    hug_id = r.router.send_from_screen(frames.GESTURE_SQUEEZE, 200)
    sent = r.outbox("hug")
    assert [(i.recipient, i.payload["gesture"], i.payload["value"]) for i in sent] == [
        ("a" * 32, "squeeze", 200)
    ]
    r.deliver()
    assert [(b, s.pattern) for b, s, _t in r.bands.played] == [(BAND, patterns.BIG_HUG)]
    assert r.router.history()[0].hug_id == hug_id


def test_a_storm_plays_its_folded_rest_as_soon_as_the_window_allows(tmp_path: Path) -> None:
    """The storm rule (default 3 buzzes a rolling minute): 30 presses 2 s apart are 4 buzzes, the
    fourth at the first minute's end standing for the other 27, each press felt exactly once."""
    t0 = at("2026-11-21T12:00")
    r = Rig(tmp_path, t0)

    def deliver() -> float | None:
        next_at = r.deliver()
        for _b, _s, token in r.bands.played[-1:]:
            r.felt(BAND, token)  # the band plays it at once
        return next_at

    next_at = None
    for i in range(30):
        r.clock.t = t0 + 2 * i
        r.incoming(hug(i, r.clock.t))
        next_at = deliver()
    assert len(r.bands.played) == 3
    assert next_at == t0 + 60
    r.clock.t = t0 + 60
    deliver()
    assert len(r.bands.played) == 4
    last = r.bands.played[-1][2]
    folded = r.store.db.execute("SELECT COUNT(*) FROM plays WHERE token = ?", (last,)).fetchone()[0]
    assert folded == 27
    assert sorted(i.payload["hug"] for i in r.outbox(RECEIPT_TYPE)) == sorted(f"h{i}" for i in range(30))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), min_size=1, max_size=40))
def test_storm_rule_holds_for_any_press_times(offsets: list[float]) -> None:
    """Never more than the rule's buzzes in any rolling window, and every press is played once."""
    t0 = at("2026-11-21T12:00")
    with tempfile.TemporaryDirectory() as tmp:
        r = Rig(Path(tmp), t0)
        r.router.set_storm_rule(3, 60)
        buzzed: dict[int, float] = {}

        def deliver() -> float | None:
            next_at = r.deliver()
            for _b, _s, token in r.bands.played:
                if token not in buzzed:  # the band plays it at once
                    buzzed[token] = r.clock.t
                    r.felt(BAND, token)
            return next_at

        for i, t in enumerate(sorted(t0 + o for o in offsets)):
            next_at = deliver()
            while next_at is not None and next_at <= t:  # what became due before this press
                r.clock.t = next_at
                next_at = deliver()
            r.clock.t = t
            r.incoming(hug(i, t))
            deliver()
        next_at = deliver()
        while next_at is not None:
            r.clock.t = next_at
            next_at = deliver()
        felt = r.store.db.execute("SELECT COUNT(*) FROM plays WHERE state = 'felt'").fetchone()[0]
        assert felt == len(offsets)
        times = sorted(buzzed.values())
        for i, t in enumerate(times):
            assert sum(1 for u in times[i:] if u < t + 60) <= 3


def test_a_resend_repeats_the_pattern_that_was_sent(tmp_path: Path) -> None:
    r = Rig(tmp_path, at("2026-11-23T14:59"))  # Monday at school: gentle until 15:00
    r.incoming(Hug("h1", "a" * 32, frames.GESTURE_SQUEEZE, 255, 1500, r.clock.t))
    r.deliver()
    r.clock.t += RESEND_PLAY_AFTER_S + 1  # after 15:00, the Felt never came
    r.deliver()
    (_b, first, t1), (_b2, again, t2) = r.bands.played
    assert (again, t2) == (first, t1), "the same frame: the band answers Felt without a second buzz"
    assert first.intensity < 255


def test_a_hug_handed_over_again_after_a_kill_is_stored_and_played_once(tmp_path: Path) -> None:
    """The relay records a message id after its handler returned: killed in between, it hands the
    same message over again, and the router's hug ids make that a no-op."""
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    msg = Incoming("l" * 32, "a" * 32, "m" * 32, "hug", hug(1, r.clock.t).to_payload(), r.clock.t)
    asyncio.run(r.router.on_relay_message(msg))
    r.router = r.new_router()  # killed before the relay recorded the id; restarted
    asyncio.run(r.router.on_relay_message(msg))
    r.deliver()
    assert len(r.bands.played) == 1
    assert len(r.router.history()) == 1
    assert [n.title for n in r.notifier.notifications()] == ["Hug from Mia"]


def test_a_storm_beyond_what_one_hug_can_carry_is_played_in_more_buzzes_nothing_lost(
    tmp_path: Path,
) -> None:
    """One buzz stands for at most MAX_FOLDED + 1 hugs (their ids travel with it); the rest wait."""
    r = Rig(tmp_path, at("2026-11-23T22:30"))  # held overnight, then released together
    n = hugs.MAX_FOLDED + 3
    for i in range(n):
        r.incoming(hug(i, r.clock.t))
    r.deliver()
    r.clock.t = at("2026-11-24T07:00")
    r.deliver()
    r.felt(BAND, r.bands.played[-1][2])
    r.deliver()
    r.felt(BAND, r.bands.played[-1][2])
    assert len(r.bands.played) == 2
    felt = r.store.db.execute("SELECT COUNT(*) FROM plays WHERE state = 'felt'").fetchone()[0]
    assert felt == n
    assert len(r.outbox(RECEIPT_TYPE)) == n


def test_a_hug_held_overnight_while_the_band_is_away_plays_when_it_is_back(tmp_path: Path) -> None:
    """Quiet hours hold a hug on a band that is away too: its age counts from the release, so a
    band charging overnight still gets the evening's hug in the morning (not missed)."""
    r = Rig(tmp_path, at("2026-11-23T22:30"))  # a Monday night: school-day hold 21:00-07:00
    r.bands.up.clear()
    r.incoming(hug(1, r.clock.t))
    r.deliver()
    r.clock.t = at("2026-11-24T07:30")  # 9 h later: older than the 6 h after which hugs are missed
    r.deliver()
    r.bands.up.add(BAND)
    r.deliver()
    assert len(r.bands.played) == 1
    assert not r.router.history()[0].missed


BAND_REMEMBERS = 16  # Play tokens the band keeps (firmware ``_RECENT_TOKENS``): a resend of one answers Felt


class RememberingBand(FakeBands):
    """A band that plays each Play at once and remembers only its last 16 tokens; a token it no
    longer remembers buzzes again. Its Felt receipts are lost at random (a link dropping)."""

    def __init__(self, rng: random.Random, loss: float) -> None:
        super().__init__()
        self.rng, self.loss = rng, loss
        self.memory: list[int] = []
        self.buzzes: Counter[int] = Counter()
        self.felts: list[int] = []

    async def play(self, band_id: str, spec: hugs.PlaySpec, token: int) -> None:
        await super().play(band_id, spec, token)
        if token not in self.memory:
            self.buzzes[token] += 1
            self.memory = [*self.memory, token][-BAND_REMEMBERS:]
        if self.rng.random() >= self.loss:
            self.felts.append(token)


@pytest.mark.parametrize("seed", range(5))
def test_a_lost_felt_is_resent_before_the_band_forgets_the_token(tmp_path: Path, seed: int) -> None:
    r = Rig(tmp_path, at("2026-11-21T12:00"))
    band = RememberingBand(random.Random(seed), loss=0.3)
    band.up.add(BAND)
    r.bands = band
    r.router = r.new_router()
    r.router.set_schedule(NO_QUIET_HOURS)
    r.router.set_storm_rule(1000, 1.0)  # every hug its own buzz
    for n in range(120):  # a hug a second, a Felt lost every third or so: the 20 s resend comes late
        r.incoming(hug(n, r.clock.t))
        r.deliver()
        felts, band.felts = band.felts, []
        for token in felts:
            r.felt(BAND, token)
        r.deliver()
        r.clock.t += 1
    band.loss = 0.0
    for _ in range(10):
        r.clock.t += RESEND_PLAY_AFTER_S + 1
        r.deliver()
        for token in band.felts:
            r.felt(BAND, token)
        band.felts = []
    assert max(band.buzzes.values()) == 1, "no Play buzzes twice"
    open_plays = r.store.db.execute("SELECT COUNT(*) FROM plays WHERE state != 'felt'").fetchone()[0]
    assert open_plays == 0, "and every hug was felt"
    felt = r.store.db.execute("SELECT COUNT(*) FROM plays WHERE state = 'felt'").fetchone()[0]
    assert felt == 120
    assert len(band.buzzes) > 4 * BAND_REMEMBERS, "many times more buzzes than the band remembers"
