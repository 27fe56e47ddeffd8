"""Wearers and co-owners on real stores with fake bands and no network: a child without a phone
whose band is owned by Mum's phone and co-owned by the home gateway; the messages between the two
owners handed over by hand (what the relay would carry)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_router import TZ, Clock, FakeBands, at

from hugapp.core import relaystore as rs
from hugapp.core.coowners import BAND_TYPE, PLAYED_TYPE, SCHEDULE_TYPE
from hugapp.core.hugs import Hug, HugError
from hugapp.core.hugstore import shared_token
from hugapp.core.notify import DesktopNotifier
from hugapp.core.relay import Incoming, Outbox
from hugapp.core.router import HUG_TYPE, RECEIPT_TYPE, Router, UnknownSender
from hugapp.core.store import Store, StoreError
from hugproto import frames

LINK = "l" * 32
MIA_BAND = "a1a1a1a1a1a1"  # band ids
MUM_BAND = "b2b2b2b2b2b2"
KEY = bytes(range(16))


class Owner:
    """One companion of the circle: its store, router, fake bands and outbox."""

    def __init__(self, tmp: Path, name: str, clock: Clock) -> None:
        self.clock = clock
        self.store = Store(tmp / f"{name}.sqlite3", clock=clock)
        self.me = rs.ensure_identity(self.store, name)
        self.bands = FakeBands()
        self.router = Router(
            self.store,
            self.me,
            self.bands,
            DesktopNotifier(),
            clock=clock,
            tz=TZ,
            outbox=Outbox(self.store, self.me),
        )
        self.msg = 0

    def receive(self, sender: str, type_: str, payload: dict[str, object]) -> None:
        self.msg += 1
        incoming = Incoming(LINK, sender, f"{self.msg:032x}", type_, payload, self.clock())
        asyncio.run(self.router.on_relay_message(incoming))

    def outbox(self, type_: str, to: str | None = None) -> list[rs.OutboxItem]:
        return [
            i for i in rs.outbox_items(self.store) if i.type == type_ and (to is None or i.recipient == to)
        ]

    def deliver(self) -> None:
        asyncio.run(self.router.deliver())


def member(o: Owner, sig: int) -> rs.Member:
    return rs.Member(LINK, o.me.member_id, o.me.name, o.me.mailbox, o.me.presence_key, sig)


@pytest.fixture
def family(tmp_path: Path) -> tuple[Owner, Owner, Owner, str]:
    """Mum's phone (her band and Mia's), the home gateway and Dad in one circle; Mia has no phone."""
    clock = Clock(at("2026-11-21T12:00"))
    mum, home, dad = (Owner(tmp_path, n, clock) for n in ("Mum", "Home", "Dad"))
    for o in (mum, home, dad):
        with o.store.transaction() as db:
            rs.save_link(db, LINK, bytes(32), "family", clock.t)
            for i, m in enumerate((mum, home, dad)):
                rs.save_member(db, member(m, i + 1), clock.t)
    mum.store.save_band(MUM_BAND, "Mum's band", KEY)
    mum.store.save_band(MIA_BAND, "Mia's band", KEY)
    mia = mum.router.coowners.add_wearer("Mia")
    mum.store.set_wearer(MIA_BAND, mia)
    mum.router.coowners.sync_wearers()
    (added,) = [i for i in mum.outbox("sys.member-added") if i.recipient == dad.me.member_id]
    for o in (home, dad):  # what the relay does with a member-added
        with o.store.transaction() as db:
            rs.save_member(db, rs.Member.from_wire(LINK, added.payload["member"]), clock.t)
    # Mum's phone shares Mia's band with the gateway: the key goes sealed through the circle
    clock.t += 1  # (so Mia's updated record is the later one in the outbox)
    mum.router.coowners.share(MIA_BAND, home.me.member_id)
    (band_msg,) = mum.outbox(BAND_TYPE)
    home.receive(mum.me.member_id, BAND_TYPE, band_msg.payload)
    for o in (home, dad):
        for i in mum.outbox("sys.member-added", o.me.member_id):  # in the order they were sent
            with o.store.transaction() as db:
                rs.save_member(db, rs.Member.from_wire(LINK, i.payload["member"]), clock.t)
    mum.bands.up.update({MUM_BAND, MIA_BAND})
    home.bands.up.add(MIA_BAND)
    return mum, home, dad, mia


def hug_from(sender: str, n: int, t: float) -> Hug:
    return Hug(f"h{n}", sender, frames.GESTURE_TAP, 1, 0, t)


def test_the_gateway_gets_the_band_key_wearer_and_owners(family: tuple[Owner, Owner, Owner, str]) -> None:
    mum, home, dad, mia = family
    band = home.store.band(MIA_BAND)
    assert (band.key, band.wearer) == (KEY, mia)
    assert [o.member_id for o in home.store.owners(MIA_BAND)] == [mum.me.member_id]
    assert [o.member_id for o in mum.store.owners(MIA_BAND)] == [home.me.member_id]
    record = next(m for m in rs.members(dad.store, LINK) if m.member_id == mia)
    assert record.phoneless
    assert record.name == "Mia"
    assert set(record.served_by) == {mum.me.member_id, home.me.member_id}
    # nothing is ever addressed to Mia herself
    assert all(i.recipient != mia for o in (mum, home) for i in rs.outbox_items(o.store))


def test_a_press_on_mias_band_is_a_hug_from_mia_to_mums_band_and_the_circle(
    family: tuple[Owner, Owner, Owner, str],
) -> None:
    mum, home, dad, mia = family
    mum.store.record_press(MIA_BAND, 7, frames.GESTURE_TAP, 1, 80, 0)
    mum.router.route_presses()
    (out,) = [h for h in mum.router.history() if h.direction == "out"]
    assert out.hug.sender == mia
    plays = mum.store.db.execute("SELECT band FROM plays WHERE hug_id = ?", (out.hug_id,)).fetchall()
    assert plays == [(MUM_BAND,)], "Mum's band plays it, Mia's own band does not"
    assert {i.recipient for i in mum.outbox(HUG_TYPE)} == {home.me.member_id, dad.me.member_id}
    # Dad accepts it from Mum's phone (one of Mia's owners); the gateway plays it nowhere
    (to_dad,) = mum.outbox(HUG_TYPE, dad.me.member_id)
    dad.store.save_band("C0:FF:EE:00:00:0D", "Dad's band", KEY)
    dad.receive(mum.me.member_id, HUG_TYPE, to_dad.payload)
    assert [h.hug.sender for h in dad.router.history()] == [mia]
    (to_home,) = mum.outbox(HUG_TYPE, home.me.member_id)
    home.receive(mum.me.member_id, HUG_TYPE, to_home.payload)
    assert home.store.db.execute("SELECT COUNT(*) FROM plays").fetchone()[0] == 0
    # the same press resent to the gateway (no ack reached the band before the switch): the same hug
    home.store.record_press(MIA_BAND, 7, frames.GESTURE_TAP, 1, 80, 0)
    home.router.route_presses()
    assert [h.hug_id for h in home.router.history()] == [out.hug_id]
    assert home.outbox(HUG_TYPE) == [], "nothing sent twice"


def test_only_a_companion_serving_mia_may_send_hugs_from_her(family: tuple[Owner, Owner, Owner, str]) -> None:
    mum, _home, dad, mia = family
    stranger = rs.new_id()
    with dad.store.transaction() as db:
        rs.save_member(db, rs.Member(LINK, stranger, "Eve", rs.new_id(), bytes(32), 5), 0)
    with pytest.raises(UnknownSender):  # not acknowledged: retried, then a dead letter (relay)
        dad.receive(stranger, HUG_TYPE, hug_from(mia, 1, dad.clock.t).to_payload())
    assert dad.router.history() == [], "a member that does not serve Mia cannot speak for her"
    dad.receive(stranger, HUG_TYPE, hug_from(mum.me.member_id, 2, dad.clock.t).to_payload())
    assert dad.router.history() == []
    with pytest.raises(UnknownSender):  # a person not known yet: retried by the relay, not dropped
        dad.receive(mum.me.member_id, HUG_TYPE, hug_from(rs.new_id(), 3, dad.clock.t).to_payload())


def test_a_hug_to_mia_is_played_once_whichever_owner_serves_her_band(
    family: tuple[Owner, Owner, Owner, str],
) -> None:
    mum, home, dad, _mia = family
    hug = hug_from(dad.me.member_id, 1, mum.clock.t)
    for o in (mum, home):
        o.receive(dad.me.member_id, HUG_TYPE, hug.to_payload())
    token = shared_token(MIA_BAND, hug.hug_id)
    # the phone sends the Play and goes away before the Felt; the gateway serves the band next
    mum.bands.up.discard(MUM_BAND)
    mum.deliver()
    assert [(b, t) for b, _s, t in mum.bands.played] == [(MIA_BAND, token)]
    # the band answers the gateway's identical Play with Felt (it has played that token): felt once
    home.deliver()
    assert [(b, t) for b, _s, t in home.bands.played] == [(MIA_BAND, token)]
    home.router.on_felt(MIA_BAND, token)
    (receipt,) = home.outbox(RECEIPT_TYPE)
    assert receipt.recipient == dad.me.member_id
    # the phone hears it was played and will not play it again
    (played,) = home.outbox(PLAYED_TYPE)
    mum.receive(home.me.member_id, PLAYED_TYPE, played.payload)
    mum.clock.t += 60
    mum.bands.played.clear()
    mum.bands.up.discard(MUM_BAND)
    mum.deliver()
    assert mum.bands.played == []
    # a Felt queued in the band for the phone's Play reaches the gateway first: still felt once
    hug2 = hug_from(dad.me.member_id, 2, mum.clock.t)
    for o in (mum, home):
        o.receive(dad.me.member_id, HUG_TYPE, hug2.to_payload())
    mum.deliver()
    home.router.on_felt(MIA_BAND, shared_token(MIA_BAND, hug2.hug_id))
    state = home.store.db.execute("SELECT state FROM plays WHERE hug_id = 'h2'").fetchone()[0]
    assert state == "felt"


def test_co_owner_messages_from_anyone_else_change_nothing(family: tuple[Owner, Owner, Owner, str]) -> None:
    mum, home, dad, _mia = family
    hug = hug_from(dad.me.member_id, 1, mum.clock.t)
    home.receive(dad.me.member_id, HUG_TYPE, hug.to_payload())
    home.receive(dad.me.member_id, PLAYED_TYPE, {"band": MIA_BAND, "hugs": [hug.hug_id]})
    state = home.store.db.execute("SELECT state FROM plays").fetchone()[0]
    assert state == "pending", "Dad does not own Mia's band"
    forged = {"band_id": MIA_BAND, "name": "x", "key": "00" * 16, "wearer": dad.me.member_id,
              "wearer_name": "Dad", "owners": []}  # fmt: skip
    home.receive(dad.me.member_id, BAND_TYPE, forged)
    assert home.store.band(MIA_BAND).key == KEY, "only a co-owner re-keys a shared band"
    with pytest.raises(HugError):
        home.router.coowners.on_message(
            Incoming(LINK, mum.me.member_id, "m" * 32, PLAYED_TYPE, {"band": MIA_BAND, "hugs": "h1"}, 0),
            lambda _db, _band, _tick: None,
        )


def test_re_pairing_and_forgetting_reach_every_co_owner(family: tuple[Owner, Owner, Owner, str]) -> None:
    mum, home, _dad, mia = family
    new_key = bytes(16 * [9])
    mum.clock.t += 1
    mum.store.save_band(MIA_BAND, "Mia's band", new_key)
    mum.router.coowners.send_band(MIA_BAND)
    home.receive(mum.me.member_id, BAND_TYPE, mum.outbox(BAND_TYPE)[-1].payload)
    assert home.store.band(MIA_BAND).key == new_key
    assert home.store.band(MIA_BAND).wearer == mia
    mum.clock.t += 1
    mum.router.coowners.send_forget(MIA_BAND)
    home.receive(mum.me.member_id, BAND_TYPE, mum.outbox(BAND_TYPE)[-1].payload)
    with pytest.raises(StoreError):
        home.store.band(MIA_BAND)
    assert home.store.owners(MIA_BAND) == []


def test_quiet_hours_follow_the_wearer(family: tuple[Owner, Owner, Owner, str]) -> None:
    from datetime import time

    from hugapp.core.schedule import DayType, QuietMode, QuietWindow, Schedule

    mum, home, dad, mia = family
    night = Schedule(windows={d: (QuietWindow(time(0, 0), time(23, 59), QuietMode.HOLD),) for d in DayType})
    mum.router.set_schedule(night, mia)  # Mia sleeps; Mum does not
    hug = hug_from(dad.me.member_id, 1, mum.clock.t)
    mum.receive(dad.me.member_id, HUG_TYPE, hug.to_payload())
    mum.deliver()
    assert [b for b, _s, _t in mum.bands.played] == [MUM_BAND], "held on Mia's band only"
    assert mum.router.schedule(mia).to_settings() == night.to_settings()
    assert mum.router.schedule().to_settings() != night.to_settings()
    # the gateway co-owning Mia's band gets her quiet hours, and holds the hug too
    (sched,) = mum.outbox(SCHEDULE_TYPE, home.me.member_id)
    home.receive(mum.me.member_id, SCHEDULE_TYPE, sched.payload)
    assert home.router.schedule(mia).to_settings() == night.to_settings()
    home.receive(dad.me.member_id, HUG_TYPE, hug.to_payload())
    home.deliver()
    assert home.bands.played == []
    # only a co-owner of Mia's band may set them
    home.receive(dad.me.member_id, SCHEDULE_TYPE, {"wearer": mia, "schedule": {}})
    assert home.router.schedule(mia).to_settings() == night.to_settings()


def test_only_the_quiet_hours_of_you_or_a_phoneless_wearer_served_here_are_set_here(
    family: tuple[Owner, Owner, Owner, str],
) -> None:
    from hugapp.core.coowners import served_wearers
    from hugapp.dev.world import NO_QUIET_HOURS

    mum, home, dad, mia = family
    mum.router.coowners.share(MUM_BAND, home.me.member_id)  # the gateway co-owns Mum's band too
    for msg in mum.outbox(BAND_TYPE):
        home.receive(mum.me.member_id, BAND_TYPE, msg.payload)
    assert home.router.coowners.wearer_of(MUM_BAND) == mum.me.member_id
    assert [w.member_id for w in served_wearers(home.store, home.me.member_id)] == [mia]
    assert [w.member_id for w in served_wearers(dad.store, dad.me.member_id)] == []
    # Mum has a phone: her quiet hours are hers to set, not the gateway's
    before = home.store.db.execute("SELECT key, value FROM settings ORDER BY key").fetchall()
    sent = rs.outbox_items(home.store)
    for wearer in (mum.me.member_id, dad.me.member_id):
        with pytest.raises(StoreError, match="without a phone"):
            home.router.set_schedule(NO_QUIET_HOURS, wearer)
    with pytest.raises(StoreError):
        dad.router.set_schedule(NO_QUIET_HOURS, mia)  # Dad's phone does not own Mia's band
    assert home.store.db.execute("SELECT key, value FROM settings ORDER BY key").fetchall() == before
    assert rs.outbox_items(home.store) == sent
    # Mia's, set on the gateway, reach Mum's phone, the other owner of her band
    home.router.set_schedule(NO_QUIET_HOURS, mia)
    (sched,) = home.outbox(SCHEDULE_TYPE, mum.me.member_id)
    mum.receive(home.me.member_id, SCHEDULE_TYPE, sched.payload)
    assert mum.router.schedule(mia).to_settings() == NO_QUIET_HOURS.to_settings()


def test_a_wearer_is_you_or_someone_without_a_phone(family: tuple[Owner, Owner, Owner, str]) -> None:
    mum, _home, dad, mia = family
    with pytest.raises(StoreError, match="without a phone"):
        mum.router.coowners.check_wearer(dad.me.member_id)
    mum.router.coowners.check_wearer(mia)
    mum.router.coowners.check_wearer(mum.me.member_id)


@pytest.mark.parametrize(
    "change",
    [
        {"served_by": "a" * 32},  # not a list
        {"served_by": []},  # a person without a phone is served by someone
        {"served_by": ["xyz"]},  # not a member id
        {"served_by": ["a" * 32] * 9},  # too many
        {"served_by": [5]},
        {"presence_key": "00" * 32},  # no phone, yet a presence key
    ],
)
def test_a_bad_record_of_a_person_without_a_phone_is_refused(change: dict[str, object]) -> None:
    good = rs.Member(LINK, "c" * 32, "Mia", "", b"", 3, ("a" * 32,)).to_wire()
    assert rs.Member.from_wire(LINK, good).served_by == ("a" * 32,)
    with pytest.raises(StoreError):
        rs.Member.from_wire(LINK, good | change)


def test_a_member_with_a_phone_names_no_one_serving_them() -> None:
    wire = rs.Member(LINK, "c" * 32, "Dad", "d" * 32, bytes(32), 2).to_wire()
    assert "served_by" not in wire, "records of members with a phone are as before"
    with pytest.raises(StoreError):
        rs.Member.from_wire(LINK, wire | {"served_by": ["a" * 32]})


def test_an_older_record_of_mia_arriving_late_keeps_the_companions_serving_her(
    family: tuple[Owner, Owner, Owner, str],
) -> None:
    from hugapp.core.relay import MEMBER_ADDED, Relay

    mum, home, dad, mia = family
    relay = Relay(dad.store, dad.me, "mqtt://127.0.0.1:1")
    older = rs.Member(LINK, mia, "Mia", "", b"", 4, (mum.me.member_id,))
    msg = Incoming(LINK, mum.me.member_id, "f" * 32, MEMBER_ADDED, {"member": older.to_wire()}, 0)
    relay._apply_control(msg, dad.clock.t)  # pyright: ignore[reportPrivateUsage]
    record = rs.member(dad.store, LINK, mia)
    assert record is not None
    assert set(record.served_by) == {mum.me.member_id, home.me.member_id}
