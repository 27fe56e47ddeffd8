"""The router: from a press on one band to a buzz on the others, with receipts back.

Durable and idempotent at every step, so a companion killed at any instant and restarted neither
loses a hug nor buzzes one twice:

- a stored press (bandlink) is turned into an outgoing hug, its relay messages and any local
  plays in ONE transaction that also marks the press routed; message ids derive from the hug id;
- an incoming hug is stored with its plays and its message id marked seen in one transaction;
- a play is sent to its band with a token fixed when the play was stored; a resend after a crash
  carries the same token and the band answers it with Felt again, without a second buzz;
- receipts (delivered: the relay's end-to-end ack; felt: the partner band's Felt) only move a
  hug forward.

Bands on this companion are all worn by people of this phone's circles: a press on one buzzes
every other band here (routed locally, no broker needed) and every other member of every circle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hugapp.core import hugs
from hugapp.core import relaystore as rs
from hugapp.core.hugs import Action, Hug, HugBackTracker, HugError, Receipt, Schedule
from hugapp.core.notify import Notifier
from hugapp.core.relay import Incoming
from hugapp.core.store import Store
from hugproto import frames, patterns

log = logging.getLogger("hugapp.router")

SCREEN = "screen"  # source of hugs sent from the phone's own heart
LOCAL_LINK = ""  # link id of hugs between two bands on this companion
RESEND_PLAY_AFTER_S = 20.0
MAX_PLAYS_IN_FLIGHT = 4  # Plays sent and not yet felt, per band: the band queues four patterns
RECEIPT_TYPE = "receipt"
HUG_TYPE = "hug"


class Bands(Protocol):
    """What the router needs from the band links (the companion provides it)."""

    def connected(self, address: str) -> bool: ...

    async def play(self, address: str, spec: hugs.PlaySpec, token: int) -> None: ...


@dataclass(frozen=True)
class HistoryEntry:
    hug_id: str
    direction: str
    sender: str
    source_band: str
    hug: Hug
    receipt: Receipt
    missed: bool
    created_at: float


@dataclass(frozen=True)
class _PlayRow:
    hug_id: str
    band: str
    token: int
    pattern: int
    signature: int
    intensity: int
    repeat: int
    not_before: float
    age_from: float
    state: str
    sent_at: float
    payload: str | None
    link_id: str | None

    def spec(self) -> hugs.PlaySpec:
        return hugs.PlaySpec(self.pattern, self.signature, self.intensity, self.repeat)


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


def message_id(hug_id: str, kind: str) -> str:
    return hashlib.sha256(f"{kind}|{hug_id}".encode()).hexdigest()[:32]


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
        relay_wake: Callable[[], None] = lambda: None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.me = identity
        self.bands = bands
        self.notifier = notifier
        self.clock = clock
        self.tz = tz
        self.relay_wake = relay_wake
        self.on_change = on_change
        self.trackers: dict[str, HugBackTracker] = {}
        self._wake = asyncio.Event()
        self._reconnected: set[str] = set()
        self._last_now = 0.0

    # ------------------------------------------------------------------ settings

    def storm_rule(self) -> tuple[int, float]:
        """(max buzzes, per rolling window in s) on each band; stored, default 3 a minute."""
        row = self.store.db.execute("SELECT value FROM settings WHERE key = 'storm'").fetchone()
        if row is None:
            return hugs.STORM_MAX_BUZZES, hugs.STORM_WINDOW_S
        rule = json.loads(row[0])
        return int(rule["max_buzzes"]), float(rule["window_s"])

    def set_storm_rule(self, max_buzzes: int, window_s: float) -> None:
        """Buzz each band at most ``max_buzzes`` times per rolling ``window_s``; presses beyond that
        fold into the next allowed buzz, every one counted."""
        if max_buzzes < 1 or not window_s > 0:
            raise HugError("a storm rule needs at least one buzz per positive window")
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES ('storm', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (json.dumps({"max_buzzes": max_buzzes, "window_s": window_s}),),
            )
        self._wake.set()

    def schedule(self) -> Schedule:
        return read_schedule(self.store)

    def set_schedule(self, schedule: Schedule) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES ('schedule', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (json.dumps(schedule.to_settings()),),
            )
            # hugs held under the old settings are decided again under the new ones
            now = self.clock()
            db.execute(
                "UPDATE plays SET not_before = ?, age_from = MIN(age_from, ?) "
                "WHERE state = 'pending' AND not_before > ?",
                (now, now, now),
            )
        self.wake()

    def _tz(self) -> tzinfo:
        return self.tz if self.tz is not None else local_timezone()

    # ------------------------------------------------------------------ loop

    def wake(self) -> None:
        self._wake.set()

    def band_connected(self, band: str) -> None:
        """A band's link is up again: plays it has not confirmed are resent at once (a Felt may have
        been lost with the old link, or the band rebooted before playing)."""
        self._reconnected.add(band)
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

    # ------------------------------------------------------------------ outgoing

    def route_presses(self) -> int:
        routed = 0
        for press in self.store.unrouted_presses():
            tracker = self.trackers.get(press.band)
            back_of = tracker.classify_press(press.pressed_at) if tracker is not None else None
            hug_id = message_id(f"{press.band}|{press.seq}|{press.received_at}", "press")
            hug = Hug(
                hug_id=hug_id,
                sender=self.me.member_id,
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
            self.relay_wake()
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
        self.relay_wake()
        self.wake()
        self.on_change()
        return hug.hug_id

    def _send_hug(self, db: sqlite3.Connection, hug: Hug, source_band: str) -> None:
        now = self.clock()
        payload = hug.to_payload()
        db.execute(
            "INSERT INTO hugs (hug_id, direction, link_id, sender, source_band, payload, created_at, "
            "updated_at) "
            "VALUES (?, 'out', ?, ?, ?, ?, ?, ?)",
            (hug.hug_id, LOCAL_LINK, self.me.member_id, source_band, json.dumps(payload), now, now),
        )
        local = [b.address for b in self.store.bands() if b.address != source_band]
        if local:  # another band here: it has the hug at once
            db.execute("UPDATE hugs SET receipt = ? WHERE hug_id = ?", (int(Receipt.DELIVERED), hug.hug_id))
            spec = hugs.play_for(hug, self._signature(LOCAL_LINK, hug.sender))
            for band in local:
                self._add_play(db, hug.hug_id, band, spec, now, hug.pressed_at)
        for link in rs.links(self.store):
            others = [
                m.member_id for m in rs.members(self.store, link.link_id) if m.member_id != self.me.member_id
            ]
            if others:
                rs.outbox_add(
                    db, message_id(hug.hug_id, link.link_id), link.link_id, others, HUG_TYPE, payload, now
                )

    # ------------------------------------------------------------------ incoming

    async def on_relay_message(self, incoming: Incoming) -> None:
        """Relay handler: a hug or a receipt from another member (called once per message id)."""
        if incoming.type == HUG_TYPE:
            self._receive_hug(incoming)
        elif incoming.type == RECEIPT_TYPE:
            self._receive_receipt(incoming)
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
        if hug.sender != incoming.sender:
            log.warning("rejected a hug claiming another sender", extra={"reason": "sender_mismatch"})
            return
        now = self.clock()
        decision = self.schedule().decide(hug, now, self._tz())
        spec = hugs.play_for(
            hug, self._signature(incoming.link_id, hug.sender), gentle=decision.action is Action.PLAY_GENTLE
        )
        name = self._member_name(incoming.link_id, hug.sender)
        with self.store.transaction() as db:
            rs.mark_seen(db, incoming.msg_id, incoming.link_id, incoming.sender, now)
            inserted = db.execute(
                "INSERT OR IGNORE INTO hugs (hug_id, direction, link_id, sender, source_band, payload, "
                "missed, "
                "created_at, updated_at) VALUES (?, 'in', ?, ?, '', ?, ?, ?, ?)",
                (
                    hug.hug_id,
                    incoming.link_id,
                    hug.sender,
                    json.dumps(hug.to_payload()),
                    int(decision.action is Action.MISSED),
                    now,
                    now,
                ),
            ).rowcount
            if inserted and decision.action is not Action.MISSED:
                held = decision.action is Action.HOLD_UNTIL and decision.until is not None
                not_before = decision.until if held and decision.until is not None else now
                age_from = not_before if held else hug.pressed_at  # a held hug's age counts from its release
                for band in self.store.bands():
                    self._add_play(db, hug.hug_id, band.address, spec, not_before, age_from)
        if not inserted:
            return
        what = "a hug back" if hug.hug_back_of else "a hug"
        count = f" ({hug.count} presses)" if hug.count > 1 else ""
        if decision.action is Action.MISSED:
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
            rs.mark_seen(db, incoming.msg_id, incoming.link_id, incoming.sender, self.clock())
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
        row = db.execute(
            "SELECT receipt, source_band FROM hugs WHERE hug_id = ? AND direction = 'out'", (hug_id,)
        ).fetchone()
        if row is None:
            return
        before = Receipt(row[0])
        after = hugs.advance(before, event)
        if after is before:
            return
        db.execute(
            "UPDATE hugs SET receipt = ?, updated_at = ? WHERE hug_id = ?", (int(after), self.clock(), hug_id)
        )
        source = row[1]
        if after is Receipt.FELT and source != SCREEN:  # the sender's band ticks: it was felt
            waiting = db.execute(
                "SELECT 1 FROM plays WHERE band = ? AND state = 'pending' AND hug_id LIKE 'tick:%'", (source,)
            ).fetchone()
            if waiting is None:  # one tick stands for every receipt that arrives before it plays
                tick = hugs.PlaySpec(patterns.FELT_TICK, 0, 160, 1)
                self._add_play(db, "tick:" + hug_id, source, tick, self.clock(), self.clock())

    # ------------------------------------------------------------------ plays

    def _add_play(
        self,
        db: sqlite3.Connection,
        hug_id: str,
        band: str,
        spec: hugs.PlaySpec,
        not_before: float,
        age_from: float,
    ) -> None:
        row = db.execute("SELECT next FROM band_tokens WHERE band = ?", (band,)).fetchone()
        token = int(row[0]) if row else int.from_bytes(hashlib.sha256(band.encode()).digest()[:2], "big")
        db.execute(
            "INSERT INTO band_tokens (band, next) VALUES (?, ?) "
            "ON CONFLICT(band) DO UPDATE SET next = excluded.next",
            (band, (token + 1) & 0xFFFF),
        )
        db.execute(
            "INSERT OR IGNORE INTO plays (hug_id, band, token, pattern, signature, intensity, repeat, "
            "not_before, age_from) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                hug_id,
                band,
                token,
                spec.pattern,
                spec.signature,
                spec.intensity,
                spec.repeat,
                not_before,
                age_from,
            ),
        )

    async def deliver(self) -> float | None:
        """Send due plays to connected bands; return when something next becomes due.

        Per band: resend what was sent but not felt for a while (same token: no second buzz);
        decide each due hug against the schedule now (missed, held again, gentle); at most
        the storm rule's buzzes per rolling window, the rest folded into the next one.
        """
        now = self.clock()
        wakes: list[float] = []
        if now < self._last_now:  # the wall clock was set back: what "happened later" happened now
            with self.store.transaction() as db:
                db.execute("UPDATE plays SET sent_at = ? WHERE sent_at > ?", (now, now))
        self._last_now = now
        rows = self.store.db.execute(
            "SELECT p.hug_id, p.band, p.token, p.pattern, p.signature, p.intensity, p.repeat, p.not_before, "
            "p.age_from, p.state, p.sent_at, h.payload, h.link_id "
            "FROM plays p LEFT JOIN hugs h ON h.hug_id = p.hug_id "
            "WHERE p.state IN ('pending', 'sent') ORDER BY p.not_before, p.rowid"
        ).fetchall()
        by_band: dict[str, list[_PlayRow]] = {}
        for r in rows:
            by_band.setdefault(r[1], []).append(_PlayRow(*r))
        for band, plays in by_band.items():
            if not self.bands.connected(band):
                continue
            resend_now = band in self._reconnected
            self._reconnected.discard(band)
            in_flight: set[int] = set()
            for p in plays:
                if p.state != "sent":
                    continue
                first = p.token not in in_flight  # folded hugs share their play's token
                in_flight.add(p.token)
                due = now if resend_now else p.sent_at + RESEND_PLAY_AFTER_S
                if due > now:
                    wakes.append(due)
                elif first and len(in_flight) <= MAX_PLAYS_IN_FLIGHT:  # no more than the band can queue
                    same = [q for q in plays if q.state == "sent" and q.token == p.token]
                    await self._play(band, same, p.spec(), now)
            waiting: list[_PlayRow] = []
            for p in plays:
                if p.state != "pending":
                    continue
                if p.not_before > now:
                    wakes.append(p.not_before)
                elif len(in_flight) >= MAX_PLAYS_IN_FLIGHT:
                    continue  # the band's queue is full: a Felt wakes us
                elif p.payload is None:  # a felt tick: not a hug, never held or folded
                    await self._play(band, [p], p.spec(), now)
                    in_flight.add(p.token)
                else:
                    waiting.append(p)
            if len(in_flight) < MAX_PLAYS_IN_FLIGHT:
                wakes += await self._play_hugs(band, waiting, now)
        return min(wakes) if wakes else None

    async def _play_hugs(self, band: str, waiting: list[_PlayRow], now: float) -> list[float]:
        tz = self._tz()
        schedule = self.schedule()
        groups: dict[tuple[str, bool], list[tuple[_PlayRow, Hug]]] = {}
        for p in waiting:
            hug = Hug.from_payload(json.loads(p.payload or "{}"))
            decision = schedule.decide(p.age_from, now, tz)
            if decision.action is Action.MISSED:
                self._mark_missed(p.hug_id, band, hug)
            elif decision.action is Action.HOLD_UNTIL and decision.until is not None:
                with self.store.transaction() as db:  # held: its age counts from the release
                    db.execute(
                        "UPDATE plays SET not_before = ?, age_from = ? WHERE hug_id = ? AND band = ?",
                        (decision.until, decision.until, p.hug_id, band),
                    )
            else:
                groups.setdefault((hug.sender, decision.action is Action.PLAY_GENTLE), []).append((p, hug))
        max_buzzes, window_s = self.storm_rule()
        recent = self.store.db.execute(
            "SELECT sent_at FROM plays WHERE band = ? AND sent_at > ? AND hug_id NOT LIKE 'tick:%' "
            "GROUP BY token ORDER BY sent_at",
            (band, now - window_s),
        ).fetchall()
        buzzes = [r[0] for r in recent]
        for (sender, gentle), items in groups.items():
            if len(buzzes) >= max_buzzes:  # a storm: fold the rest into the next allowed buzz
                return [buzzes[-max_buzzes] + window_s]
            merged = items[0][1]
            for _p, hug in items[1:]:
                merged = hugs.fold(merged, hug)
            spec = hugs.play_for(
                merged, self._signature(items[0][0].link_id or LOCAL_LINK, sender), gentle=gentle
            )
            await self._play(band, [p for p, _h in items], spec, now)
            buzzes.append(now)
        return []

    async def _play(self, band: str, plays: list[_PlayRow], spec: hugs.PlaySpec, now: float) -> None:
        token = plays[0].token
        try:
            await self.bands.play(band, spec, token)
        except Exception as exc:  # noqa: BLE001  (any failure: the play stays pending and is retried)
            log.info("play on %s not sent: %s", band, exc)
            return
        with self.store.transaction() as db:
            for p in plays:
                db.execute(
                    "UPDATE plays SET state = 'sent', sent_at = ?, token = ? "
                    "WHERE hug_id = ? AND band = ? AND state != 'felt'",
                    (now, token, p.hug_id, band),
                )

    def _mark_missed(self, hug_id: str, band: str, hug: Hug) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE plays SET state = 'missed' WHERE hug_id = ? AND band = ?", (hug_id, band))
            db.execute("UPDATE hugs SET missed = 1, updated_at = ? WHERE hug_id = ?", (self.clock(), hug_id))
        name = self._member_name(self._link_of(hug_id), hug.sender)
        self.notifier.notify(f"Missed hug from {name}", f"{name} sent a hug while you were away")
        self.on_change()

    def _link_of(self, hug_id: str) -> str:
        row = self.store.db.execute("SELECT link_id FROM hugs WHERE hug_id = ?", (hug_id,)).fetchone()
        return str(row[0]) if row else LOCAL_LINK

    def on_felt(self, band: str, token: int) -> None:
        """A band played the play(s) sent with this token: receipts for every hug it stood for."""
        now = self.clock()
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT hug_id FROM plays WHERE band = ? AND token = ? AND state = 'sent'", (band, token)
            ).fetchall()
            for (hug_id,) in rows:
                db.execute(
                    "UPDATE plays SET state = 'felt', felt_at = ? WHERE hug_id = ? AND band = ?",
                    (now, hug_id, band),
                )
                if hug_id.startswith("tick:"):
                    continue
                self.trackers.setdefault(band, HugBackTracker()).played(hug_id, now)
                hug = db.execute(
                    "SELECT direction, link_id, sender FROM hugs WHERE hug_id = ?", (hug_id,)
                ).fetchone()
                first = db.execute(
                    "SELECT COUNT(*) FROM plays WHERE hug_id = ? AND state = 'felt'", (hug_id,)
                )
                if hug is None or first.fetchone()[0] != 1:
                    continue
                direction, link_id, sender = hug
                if direction == "out":  # local: another band here played it
                    self._advance(db, hug_id, Receipt.FELT)
                else:
                    rs.outbox_add(
                        db,
                        message_id(hug_id, "felt"),
                        link_id,
                        [sender],
                        RECEIPT_TYPE,
                        {"hug": hug_id, "state": "felt"},
                        now,
                    )
        if rows:
            self.relay_wake()
            self.wake()
            self.on_change()

    # ------------------------------------------------------------------ views

    def _signature(self, link_id: str, sender: str) -> int:
        if link_id == LOCAL_LINK:
            return 0
        member = rs.member(self.store, link_id, sender)
        return member.signature if member is not None else 0

    def _member_name(self, link_id: str, member_id: str) -> str:
        member = rs.member(self.store, link_id, member_id)
        return member.name if member is not None else "someone"

    def history(self, limit: int = 200) -> list[HistoryEntry]:
        return read_history(self.store, limit)


# ---------------------------------------------------------------------- store reads (no Router needed)


def read_schedule(store: Store) -> Schedule:
    """The quiet hours and calendar in force (read-only: a window reads it without a Router)."""
    row = store.db.execute("SELECT value FROM settings WHERE key = 'schedule'").fetchone()
    return Schedule() if row is None else Schedule.from_settings(json.loads(row[0]))


def read_history(store: Store, limit: int = 200) -> list[HistoryEntry]:
    """The newest hugs first, both directions (read-only: a window reads it without a Router)."""
    rows = store.db.execute(
        "SELECT hug_id, direction, sender, source_band, payload, receipt, missed, created_at FROM hugs "
        "ORDER BY created_at DESC, rowid DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        HistoryEntry(
            r[0], r[1], r[2], r[3], Hug.from_payload(json.loads(r[4])), Receipt(r[5]), bool(r[6]), r[7]
        )
        for r in rows
    ]
