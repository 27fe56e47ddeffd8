"""Wearers and co-owners: who wears each band, and the other companions that hold its key.

A band is worn by one person of the circles and owned by the companions holding its key: a parent's
phone, and the family's home gateway that co-owns it so the band is served while the phone is off.
The band takes one connection at a time, so whichever owner is in range serves it. What keeps the
owners in step, over the circle's sealed relay (messages to each co-owner, durable, acknowledged):

- ``band``: a band's key, name and wearer, and its other owners (sharing, re-pairing), or
  ``forget``: every owner drops it;
- ``played``: the band played these hugs (or felt ticks): the same plays waiting here are done;
- ``tick``: a felt tick for the band's wearer, played by whichever owner serves the band;
- ``schedule``: the wearer's quiet hours and School-day / Home-day calendar (also sent with the
  band), so every owner holds and plays the wearer's hugs alike.

Every owner of a band stores its own plays of the hugs to the wearer (each gets them through the
circle); a co-owned band's Play token comes from the hug (hugstore.shared_token), so a Play resent
by the other owner after a switch is answered by the band with Felt and not buzzed again.

A person without a companion of their own is a circle member with no mailbox whose record names the
companions serving their band (``served_by``): only those may send hugs from that person.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from hugapp.core import relaystore as rs
from hugapp.core.hugs import HugError, check_id, message_id
from hugapp.core.hugstore import HugStore
from hugapp.core.relay import MEMBER_ADDED, Incoming, Outbox
from hugapp.core.schedule import Schedule
from hugapp.core.store import Store, StoreError

log = logging.getLogger("hugapp.coowners")

BAND_TYPE = "band"
PLAYED_TYPE = "played"
TICK_TYPE = "tick"
SCHEDULE_TYPE = "schedule"
TYPES = frozenset({BAND_TYPE, PLAYED_TYPE, TICK_TYPE, SCHEDULE_TYPE})
MAX_PLAYED_IDS = 1_001  # a Play stands for one hug and its folded ones (hugs.MAX_FOLDED)


def served_wearers(store: Store, me: str) -> list[rs.Wearer]:
    """The people without a phone whose bands this companion owns or co-owns: it sets their quiet
    hours (a band here worn by a member with a phone of their own follows what that phone sets)."""
    worn = {b.wearer for b in store.bands()} - {"", me}
    return [
        w
        for w in rs.wearers(store)
        if w.member_id in worn and ((p := rs.person(store, w.member_id)) is None or p.phoneless)
    ]


def schedule_key(store: Store, me: str, wearer: str | None) -> str:
    """hugstore's key of the quiet hours this companion sets for ``wearer`` ("" for its own member:
    None, "" or ``me``); StoreError for anyone it does not serve."""
    if not wearer or wearer == me:
        return ""
    if not any(w.member_id == wearer for w in served_wearers(store, me)):
        raise StoreError(
            "quiet hours are set here for you and for the people without a phone whose bands this "
            "companion owns"
        )
    return wearer


class CoOwners:
    def __init__(
        self,
        store: Store,
        hugstore: HugStore,
        outbox: Outbox,
        me: str,
        *,
        clock: Callable[[], float],
        on_bands: Callable[[], None],
    ) -> None:
        self.store = store
        self.hugstore = hugstore
        self.outbox = outbox
        self.me = me
        self.clock = clock
        self.on_bands = on_bands  # the bands here changed (shared to us, forgotten): start/stop links

    # ------------------------------------------------------------------ reads

    def wearers(self) -> dict[str, str]:
        """Every band here -> the member id of its wearer."""
        return {b.band_id: b.wearer or self.me for b in self.store.bands()}

    def wearer_of(self, band: str) -> str:
        return self.wearers().get(band, self.me)

    def shared(self, band: str) -> bool:
        return bool(self.store.owners(band))

    def may_speak_for(self, link_id: str, companion: str, person: str) -> bool:
        """``companion`` may send hugs from ``person``: it is them, or owns their band."""
        if companion == person:
            return True
        m = rs.member(self.store, link_id, person)
        return m is not None and m.phoneless and companion in m.served_by

    # ------------------------------------------------------------------ wearers in the circles

    def add_wearer(self, name: str) -> str:
        """A new person without a phone, served here; their member id."""
        return rs.add_wearer(self.store, name).member_id

    def check_wearer(self, member_id: str) -> None:
        """A band here may be worn by this companion's member or a person without a phone."""
        if member_id == self.me or any(w.member_id == member_id for w in rs.wearers(self.store)):
            return
        m = rs.person(self.store, member_id)
        if m is None or not m.phoneless:
            raise StoreError("a band here is worn by you or by someone without a phone of their own")
        rs.add_wearer(self.store, m.name, m.member_id, m.signature)

    def sync_wearers(self) -> int:
        """Every person without a phone whose band is owned here is a member of each circle, served
        by every owner of their bands; records that changed go to the circle. How many changed."""
        worn = set(self.wearers().values())
        changed = 0
        now = self.clock()
        for w in rs.wearers(self.store):
            if w.member_id not in worn:
                continue
            owners = {self.me} | {
                o.member_id
                for b in self.store.bands()
                if (b.wearer or self.me) == w.member_id
                for o in self.store.owners(b.band_id)
            }
            for circle in rs.links(self.store):
                old = rs.member(self.store, circle.link_id, w.member_id)
                served = tuple(sorted(owners | set(old.served_by if old else ())))
                if old is not None and old.served_by == served:
                    continue
                taken = [m.signature for m in rs.members(self.store, circle.link_id)]
                record = rs.Member(
                    circle.link_id,
                    w.member_id,
                    old.name if old else w.name,
                    "",
                    b"",
                    old.signature if old else rs.free_signature(taken),
                    served,
                )
                with self.store.transaction() as db:
                    rs.save_member(db, record, now)
                    self.outbox.to_circle(
                        db, rs.new_id(), circle.link_id, MEMBER_ADDED, {"member": record.to_wire()}, now
                    )
                changed += 1
        if changed:
            self.outbox.poke()
        return changed

    # ------------------------------------------------------------------ sending

    def _circle_of(self, member_id: str) -> str:
        for circle in rs.links(self.store):
            m = rs.member(self.store, circle.link_id, member_id)
            if m is not None and not m.phoneless:
                return circle.link_id
        raise StoreError("no companion of your circles has that id")

    def share(self, band_id: str, member_id: str) -> None:
        """Let another companion of a circle (the home gateway) co-own a band here."""
        if member_id == self.me:
            raise StoreError("this companion owns the band already")
        self.store.band(band_id)  # StoreError if not here
        self.store.add_owner(band_id, self._circle_of(member_id), member_id)
        self.send_band(band_id)
        self.sync_wearers()

    def send_band(self, band_id: str) -> None:
        """The band's key, name, wearer and owners to each co-owner (after sharing or re-pairing)."""
        band = self.store.band(band_id)
        owners = self.store.owners(band_id)
        wearer = band.wearer or self.me
        person = rs.person(self.store, wearer)
        now = self.clock()
        with self.store.transaction() as db:
            for o in owners:
                payload = {
                    "band_id": band_id,
                    "name": band.name,
                    "key": band.key.hex(),
                    "model": band.model,
                    "wearer": wearer,
                    "wearer_name": person.name if person is not None else band.name,
                    "owners": sorted({self.me} | {x.member_id for x in owners} - {o.member_id}),
                    "schedule": self.hugstore.schedule(self._key(wearer)).to_settings(),
                }
                self.outbox.to_member(db, rs.new_id(), o.link_id, o.member_id, BAND_TYPE, payload, now)
        self.outbox.poke()

    def _key(self, wearer: str) -> str:
        """hugstore's schedule key of a wearer ("" for this companion's own member)."""
        return "" if wearer == self.me else wearer

    def send_schedule(self, wearer: str) -> None:
        """A wearer's quiet hours changed here: to the co-owners of each band they wear."""
        now = self.clock()
        settings = self.hugstore.schedule(self._key(wearer)).to_settings()
        owners = {
            (o.link_id, o.member_id)
            for band, w in self.wearers().items()
            if w == wearer
            for o in self.store.owners(band)
        }
        if not owners:
            return
        with self.store.transaction() as db:
            for link_id, member_id in sorted(owners):
                payload = {"wearer": wearer, "schedule": settings}
                self.outbox.to_member(db, rs.new_id(), link_id, member_id, SCHEDULE_TYPE, payload, now)
        self.outbox.poke()

    def send_forget(self, band_id: str) -> None:
        """Every co-owner drops the band (it was forgotten or factory-reset here)."""
        now = self.clock()
        with self.store.transaction() as db:
            for o in self.store.owners(band_id):
                payload = {"band_id": band_id, "forget": True}
                self.outbox.to_member(db, rs.new_id(), o.link_id, o.member_id, BAND_TYPE, payload, now)
        self.outbox.poke()

    def played(self, db: sqlite3.Connection, band: str, token: int, hug_ids: list[str], now: float) -> None:
        """The band played these (inside the caller's transaction): tell its co-owners."""
        if not hug_ids:
            return
        key = f"{band}|{token}|{','.join(sorted(hug_ids))}"
        for o in self.store.owners(band):
            self.outbox.to_member(
                db,
                message_id(key, "played"),
                o.link_id,
                o.member_id,
                PLAYED_TYPE,
                {"band": band, "hugs": hug_ids},
                now,
            )

    def tick(self, db: sqlite3.Connection, band: str, tick_id: str, now: float) -> None:
        """A felt tick waits for the band here: its co-owners add the same one."""
        for o in self.store.owners(band):
            self.outbox.to_member(
                db,
                message_id(f"{band}|{tick_id}", "tick"),
                o.link_id,
                o.member_id,
                TICK_TYPE,
                {"band": band, "tick": tick_id},
                now,
            )

    # ------------------------------------------------------------------ receiving

    def on_message(
        self, incoming: Incoming, add_tick: Callable[[sqlite3.Connection, str, str], object]
    ) -> None:
        """A co-owner message. Bad input raises HugError (the relay drops it as a dead letter)."""
        p = incoming.payload
        if incoming.type == BAND_TYPE:
            self._on_band(incoming, p)
            return
        if incoming.type == SCHEDULE_TYPE:
            wearer = check_id("wearer", p.get("wearer"))
            if not any(
                w == wearer and any(o.member_id == incoming.sender for o in self.store.owners(band))
                for band, w in self.wearers().items()
            ):
                log.warning("ignoring quiet hours for a wearer we do not serve with their sender")
                return
            self.hugstore.set_schedule(
                Schedule.from_settings(p.get("schedule")), self.clock(), self._key(wearer)
            )
            return
        band = p.get("band")
        if not isinstance(band, str) or not any(
            o.member_id == incoming.sender for o in self.store.owners(band)
        ):
            log.warning("ignoring a co-owner message about a band we do not share with its sender")
            return
        now = self.clock()
        if incoming.type == PLAYED_TYPE:
            raw = p.get("hugs")
            if not isinstance(raw, list) or not 0 < len(raw) <= MAX_PLAYED_IDS:  # pyright: ignore[reportUnknownArgumentType]
                raise HugError("played without hug ids")
            items: list[Any] = raw  # pyright: ignore[reportUnknownVariableType]
            ids = [check_id("hug id", x) for x in items]
            with self.store.transaction() as db:
                self.hugstore.mark_felt_elsewhere(db, band, ids, now)
        elif incoming.type == TICK_TYPE:
            tick_id = check_id("tick id", p.get("tick"))
            with self.store.transaction() as db:
                add_tick(db, band, tick_id)

    def _on_band(self, incoming: Incoming, p: Mapping[str, Any]) -> None:
        band_id = p.get("band_id")
        if not isinstance(band_id, str) or not 0 < len(band_id) <= 64:
            raise HugError("a band message without a band id")
        owners_here = {o.member_id for o in self.store.owners(band_id)}
        here = any(b.band_id == band_id for b in self.store.bands())
        if here and incoming.sender not in owners_here:
            log.warning("ignoring a band message from a companion that does not co-own it")
            return
        if p.get("forget") is True:
            if here:
                self.store.forget_band(band_id)
                self.on_bands()
            return
        try:
            key = bytes.fromhex(str(p.get("key")))
            name, wearer, wearer_name = str(p["name"]), check_id("wearer", p["wearer"]), str(p["wearer_name"])
            owners_raw: list[Any] = list(p["owners"])
            owners = [check_id("owner", x) for x in owners_raw]
        except (KeyError, ValueError, TypeError) as e:
            raise HugError(f"a malformed band message ({e})") from None
        schedule = Schedule.from_settings(p["schedule"]) if "schedule" in p else None
        if wearer != self.me:
            rs.add_wearer(self.store, wearer_name, wearer)
        self.store.save_band(band_id, name, key, str(p.get("model", "")), wearer=wearer)
        if schedule is not None:
            self.hugstore.set_schedule(schedule, self.clock(), self._key(wearer))
        for owner in owners:
            if owner != self.me:
                self.store.add_owner(band_id, self._circle_of_or(owner, incoming.link_id), owner)
        log.info("co-owning band %s (%s) with %d other companion(s)", name, band_id, len(owners))
        self.on_bands()

    def _circle_of_or(self, member_id: str, default: str) -> str:
        try:
            return self._circle_of(member_id)
        except StoreError:
            return default
