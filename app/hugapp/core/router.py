"""The router: from a press on one band to a buzz on the others, with receipts back.

Durable and idempotent at every step, so a companion killed at any instant and restarted neither
loses a hug nor buzzes one twice:

- a stored press (bandlink) is turned into an outgoing hug, its relay messages and any local
  plays in ONE transaction that also marks the press routed; message ids derive from the hug id;
- an incoming hug is stored with its plays in one transaction, keyed by its hug id: the same hug
  again (a resend, another circle, the relay's redelivery after a kill) stores nothing;
- a play is sent to its band with a token fixed when the play was stored (playback); a resend after
  a crash carries the same token and the band answers it with Felt again, without a second buzz;
- receipts (delivered: the relay's end-to-end ack; felt: the partner band's Felt) only move a
  hug forward.

Every band here is worn by a person of the circles (coowners: this companion's own member, or a
person without a phone). A press is a hug from the band's wearer: it buzzes every other wearer's
band here (routed locally, no broker needed) and goes to every other companion of every circle; a
hug that arrives buzzes every band here not worn by its sender. A band co-owned with another
companion (the home gateway) is kept in step with it through coowners. The router decides;
hugstore runs the SQL, the relay's Outbox holds the messages, playback plays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import tzinfo

from hugapp.core import hugs
from hugapp.core import relaystore as rs
from hugapp.core.coowners import TYPES as COOWNER_TYPES
from hugapp.core.coowners import CoOwners, schedule_key
from hugapp.core.hugs import Hug, HugBackTracker, HugError, PlaySpec, Receipt, message_id
from hugapp.core.hugstore import TICK_PREFIX, HistoryEntry, HugStore
from hugapp.core.notify import Notifier
from hugapp.core.playback import LOCAL_LINK, Bands, Playback, sender_name
from hugapp.core.relay import Incoming, Outbox
from hugapp.core.schedule import Schedule
from hugapp.core.store import Press, Store
from hugproto import frames, patterns

log = logging.getLogger("hugapp.router")

SCREEN = "screen"  # source of hugs sent from the phone's own heart
RECEIPT_TYPE = "receipt"
HUG_TYPE = "hug"
FELT_TICK = PlaySpec(patterns.FELT_TICK, 0, 160, 1)  # the sender's band: your hug was felt
PRESS_ERA_BITS = 20  # a press's hug id names its ~12-day era, so a band's u16 seq may come round


class UnknownSender(Exception):
    """A hug from a person the relaying companion does not (yet) serve: not acknowledged, retried."""


def press_hug_id(press: Press) -> str:
    """The id of the hug a press makes: the same whichever owner of the band received it, so a press
    acknowledged by one owner and resent to another is one hug."""
    era = int(press.pressed_at) >> PRESS_ERA_BITS
    return message_id(f"{press.band}|{press.seq}|{era}", "press")


class Router:
    def __init__(
        self,
        store: Store,
        identity: rs.Identity,
        bands: Bands,
        notifier: Notifier,
        *,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        outbox: Outbox | None = None,
        on_change: Callable[[], None] = lambda: None,
        on_bands: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.hugstore = HugStore(store)
        self.me = identity
        self.notifier = notifier
        self.clock = clock
        self.outbox = outbox if outbox is not None else Outbox(store, identity)
        self.on_change = on_change
        self.coowners = CoOwners(
            store, self.hugstore, self.outbox, identity.member_id, clock=clock, on_bands=on_bands
        )
        self.playback = Playback(
            self.hugstore,
            bands,
            notifier,
            clock=clock,
            tz=tz,
            on_change=on_change,
            wearer_of=self._schedule_owner,
        )
        self.trackers: dict[str, HugBackTracker] = {}
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ settings

    def storm_rule(self) -> tuple[int, float]:
        return self.playback.storm_rule()

    def set_storm_rule(self, max_buzzes: int, window_s: float) -> None:
        self.playback.set_storm_rule(max_buzzes, window_s)
        self.wake()

    def _schedule_owner(self, band: str) -> str:
        """Whose quiet hours a band follows: its wearer's ("" for this companion's own member)."""
        wearer = self.coowners.wearer_of(band)
        return "" if wearer == self.me.member_id else wearer

    def schedule(self, wearer: str | None = None) -> Schedule:
        """The quiet hours of ``wearer`` (None: this companion's own member; StoreError for a person
        it does not serve, see coowners.schedule_key)."""
        return self.hugstore.schedule(schedule_key(self.store, self.me.member_id, wearer))

    def set_schedule(self, schedule: Schedule, wearer: str | None = None) -> None:
        """Store the quiet hours (of ``wearer``, as :meth:`schedule`; refused, changing nothing, for a
        person not served here); hugs held under the old ones are decided again."""
        key = schedule_key(self.store, self.me.member_id, wearer)
        self.hugstore.set_schedule(schedule, self.clock(), key)
        self.coowners.send_schedule(key or self.me.member_id)  # the band's other owners too
        self.wake()

    def history(self, limit: int = 200) -> list[HistoryEntry]:
        return self.hugstore.history(limit)

    # ------------------------------------------------------------------ loop

    def wake(self) -> None:
        self._wake.set()

    def band_connected(self, band: str) -> None:
        """A band's link is up again: plays it has not confirmed are resent at once (a Felt may have
        been lost with the old link, or the band rebooted before playing)."""
        self.playback.band_connected(band)
        self._wake.set()

    async def run(self) -> None:
        """Route stored presses and deliver pending plays, until cancelled."""
        while True:
            self._wake.clear()
            self.route_presses()
            next_at = await self.deliver()
            timeout = None if next_at is None else max(0.05, next_at - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(timeout or 5.0, 5.0))

    async def deliver(self) -> float | None:
        """Play what is due on the bands (playback); when something next becomes due."""
        return await self.playback.deliver()

    # ------------------------------------------------------------------ outgoing

    def route_presses(self) -> int:
        routed = 0
        for press in self.store.unrouted_presses():
            tracker = self.trackers.get(press.band)
            back_of = tracker.classify_press(press.pressed_at) if tracker is not None else None
            hug = Hug(
                hug_id=press_hug_id(press),
                sender=self.coowners.wearer_of(press.band),
                gesture=press.gesture,
                value=press.value,
                duration_ms=min(press.duration_ms, hugs.MAX_DURATION_MS),
                pressed_at=press.pressed_at,
                hug_back_of=back_of,
            )
            with self.store.transaction() as db:
                self._send_hug(db, hug, press.band)
                self.store.mark_routed(press.id, db)
            routed += 1
        if routed:
            self.outbox.poke()
            self.on_change()
        return routed

    def send_from_screen(
        self, gesture: int = frames.GESTURE_TAP, value: int = 1, duration_ms: int = 0
    ) -> str:
        """A hug from the phone's own heart; returns its id."""
        now = self.clock()
        hug = Hug(
            hug_id=message_id(f"{SCREEN}|{now}|{id(self)}", "screen"),
            sender=self.me.member_id,
            gesture=gesture,
            value=value,
            duration_ms=duration_ms,
            pressed_at=now,
        )
        with self.store.transaction() as db:
            self._send_hug(db, hug, SCREEN)
        self.outbox.poke()
        self.wake()
        self.on_change()
        return hug.hug_id

    def _send_hug(self, db: sqlite3.Connection, hug: Hug, source_band: str) -> None:
        """The hug, its plays on the other bands here and its messages to every circle: one step."""
        now = self.clock()
        local = [
            band
            for band, wearer in self.coowners.wearers().items()
            # a band here of this companion's own member plays its other bands' presses (as before
            # wearers: a gateway holding two bands of its own)
            if band != source_band and (wearer != hug.sender or wearer == self.me.member_id)
        ]
        receipt = Receipt.DELIVERED if local else Receipt.SENT  # another band here has it at once
        if not self.hugstore.add_hug(db, hug, "out", LOCAL_LINK, source_band, now, receipt):
            return  # a co-owner routed this press already and we have its hug
        for band in local:
            self.hugstore.add_play(
                db, hug.hug_id, band, now, hug.pressed_at, shared=self.coowners.shared(band)
            )
        payload = hug.to_payload()
        for link in rs.links(self.store):
            self.outbox.to_circle(
                db, message_id(hug.hug_id, link.link_id), link.link_id, HUG_TYPE, payload, now
            )

    # ------------------------------------------------------------------ incoming

    async def on_relay_message(self, incoming: Incoming) -> None:
        """Relay handler: a hug or a receipt from another member. Idempotent: the relay records the
        message id only after this returned, so a kill in between hands it over again."""
        if incoming.type == HUG_TYPE:
            self._receive_hug(incoming)
        elif incoming.type == RECEIPT_TYPE:
            self._receive_receipt(incoming)
        elif incoming.type in COOWNER_TYPES:
            self.coowners.on_message(incoming, self._add_tick)
        else:
            log.warning("ignoring a message of unknown type %r", incoming.type)
        self.wake()
        self.on_change()

    def _receive_hug(self, incoming: Incoming) -> None:
        try:
            hug = Hug.from_payload(incoming.payload)
        except HugError as exc:
            log.warning("rejected a hug payload: %s", exc, extra={"reason": "bad_hug"})
            return
        if not self.coowners.may_speak_for(incoming.link_id, incoming.sender, hug.sender):
            person = rs.member(self.store, incoming.link_id, hug.sender)
            if person is None or person.phoneless:
                # a person this phone has not heard of yet, or not yet as served by that companion
                # (their record may be on its way): not acknowledged, so the relay brings it again
                raise UnknownSender(f"a hug from {hug.sender[:8]}, not (yet) served by its sender")
            log.warning("rejected a hug claiming another sender", extra={"reason": "sender_mismatch"})
            return
        now = self.clock()
        # too old to ever buzz: missed at once; else each band here plays it when playback says so
        missed = self.hugstore.schedule().too_old(hug.pressed_at, now)
        with self.store.transaction() as db:
            inserted = self.hugstore.add_hug(db, hug, "in", incoming.link_id, "", now, via=incoming.sender)
            if inserted and missed:
                self.hugstore.mark_missed(db, hug.hug_id, now)
            elif inserted:
                for band, wearer in self.coowners.wearers().items():
                    if wearer != hug.sender:
                        self.hugstore.add_play(
                            db, hug.hug_id, band, now, hug.pressed_at, shared=self.coowners.shared(band)
                        )
        if not inserted:
            return
        name = sender_name(self.store, incoming.link_id, hug.sender)
        what = "a hug back" if hug.hug_back_of else "a hug"
        count = f" ({hug.count} presses)" if hug.count > 1 else ""
        if missed:
            self.notifier.notify(
                f"Missed hug from {name}", f"{name} sent {what}{count} while you were asleep"
            )
        else:
            self.notifier.notify(f"Hug from {name}", f"{name} sent {what}{count}")

    def _receive_receipt(self, incoming: Incoming) -> None:
        hug_id = incoming.payload.get("hug")
        if not isinstance(hug_id, str) or incoming.payload.get("state") != "felt":
            log.warning("rejected a receipt payload", extra={"reason": "bad_receipt"})
            return
        with self.store.transaction() as db:
            self._advance(db, hug_id, Receipt.FELT)

    def on_delivered(self, msg_id: str, member_id: str) -> None:
        """Relay ack: the partner's phone has the hug (or the receipt)."""
        items = rs.outbox_items(self.store, msg_id)  # the acked message is still in the outbox
        if not items or items[0].type != HUG_TYPE:
            return
        hug_id = items[0].payload.get("id")
        if not isinstance(hug_id, str) or message_id(hug_id, items[0].link_id) != msg_id:
            return
        with self.store.transaction() as db:
            self._advance(db, hug_id, Receipt.DELIVERED)
        self.on_change()

    def _advance(self, db: sqlite3.Connection, hug_id: str, event: Receipt) -> None:
        found = self.hugstore.sent_receipt(db, hug_id)
        if found is None:
            return
        before, source = found
        after = hugs.advance(before, event)
        if after is before:
            return
        now = self.clock()
        self.hugstore.set_receipt(db, hug_id, after, now)
        # the sender's band ticks; one tick stands for every receipt that arrives before it plays
        if after is Receipt.FELT and source != SCREEN and self._add_tick(db, source, TICK_PREFIX + hug_id):
            self.coowners.tick(db, source, TICK_PREFIX + hug_id, now)  # whichever owner serves it

    def _add_tick(self, db: sqlite3.Connection, band: str, tick_id: str) -> bool:
        """A felt tick on a band here, unless one is waiting already; True if added."""
        if not any(b.band_id == band for b in self.store.bands()) or self.hugstore.tick_waiting(db, band):
            return False
        now = self.clock()
        self.hugstore.add_play(db, tick_id, band, now, now, FELT_TICK, shared=self.coowners.shared(band))
        return True

    # ------------------------------------------------------------------ felt

    def on_felt(self, band: str, token: int) -> None:
        """A band played the play(s) sent with this token: receipts for every hug it stood for."""
        now = self.clock()
        self.playback.felt(band, token)
        with self.store.transaction() as db:
            felt = self.hugstore.mark_felt(db, band, token, now)
            for f in felt:
                if f.hug_id.startswith(TICK_PREFIX):
                    continue
                self.trackers.setdefault(band, HugBackTracker()).played(f.hug_id, now)
                if not f.first:
                    continue
                if f.direction == "out":  # local: another band here played it
                    self._advance(db, f.hug_id, Receipt.FELT)
                elif f.direction == "in":
                    self.outbox.to_member(
                        db,
                        message_id(f.hug_id, "felt"),
                        f.link_id,
                        f.via or f.sender,  # the companion that sent it
                        RECEIPT_TYPE,
                        {"hug": f.hug_id, "state": "felt"},
                        now,
                    )
            self.coowners.played(db, band, token, [f.hug_id for f in felt], now)
        if felt:
            self.outbox.poke()
            self.wake()
            self.on_change()
