"""The companion's hugs in SQLite (migration 3 of hugapp.core.store): hugs sent and received, their
plays on each band, the next play token of each band, and settings.

The one owner of these tables: the router and playback decide, this module runs the SQL. Methods
that take ``db`` write inside the caller's transaction (:meth:`HugStore.transaction`), so one step
(a hug, its plays and its relay messages) commits whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hugapp.core.hugs import Hug, PlaySpec, Receipt
from hugapp.core.schedule import Schedule
from hugapp.core.store import Store


def shared_token(band: str, hug_id: str) -> int:
    """The Play token every owner of a co-owned band uses for ``hug_id`` on it."""
    return int.from_bytes(hashlib.sha256(f"{band}|{hug_id}".encode()).digest()[:2], "big")


TICK_PREFIX = "tick:"  # plays of a felt tick (no hug row): "tick:" + the hug that was felt
NO_SPEC = PlaySpec(0, 0, 0, 0)  # a hug play's pattern is chosen when it plays (pattern 0: none yet)


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
class Play:
    """One hug (or felt tick) to play on one band; ``hug`` is None for a tick."""

    hug_id: str
    band: str
    token: int
    spec: PlaySpec
    not_before: float
    age_from: float
    state: str  # pending, sent, felt, missed
    sent_at: float
    hug: Hug | None
    link_id: str


@dataclass(frozen=True)
class Felt:
    """A play the band just confirmed; ``direction`` is "" for a tick or an unknown hug."""

    hug_id: str
    direction: str
    link_id: str
    sender: str
    first: bool  # the first band to feel this hug
    via: str = ""  # the companion that relayed it (its receipt goes there); "" = the sender


class HugStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    @contextmanager
    def transaction(self) -> Generator[sqlite3.Connection]:
        with self.store.transaction() as db:
            yield db

    # ------------------------------------------------------------------ settings

    def setting(self, key: str) -> Any:
        """A stored setting (JSON), or None."""
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any, db: sqlite3.Connection | None = None) -> None:
        if db is None:
            with self.transaction() as tx:
                self.set_setting(key, value, tx)
            return
        db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def schedule(self, wearer: str = "") -> Schedule:
        """The quiet hours of ``wearer`` ("": this companion's own member, and anyone without their own)."""
        settings = self.setting("schedule:" + wearer) if wearer else None
        if settings is None:
            settings = self.setting("schedule")
        return Schedule() if settings is None else Schedule.from_settings(settings)

    def set_schedule(self, schedule: Schedule, now: float, wearer: str = "") -> None:
        """Store the quiet hours (of ``wearer``); plays held under the old ones become due ``now``, to
        be decided again."""
        with self.transaction() as db:
            self.set_setting("schedule:" + wearer if wearer else "schedule", schedule.to_settings(), db)
            db.execute(
                "UPDATE plays SET not_before = ?, age_from = MIN(age_from, ?) "
                "WHERE state = 'pending' AND not_before > ?",
                (now, now, now),
            )

    # ------------------------------------------------------------------ hugs

    def add_hug(
        self,
        db: sqlite3.Connection,
        hug: Hug,
        direction: str,
        link_id: str,
        source_band: str,
        now: float,
        receipt: Receipt = Receipt.SENT,
        via: str = "",
    ) -> bool:
        """Store a hug sent ("out") or received ("in", ``via`` the companion that relayed it); False
        if it was already stored."""
        return (
            db.execute(
                "INSERT OR IGNORE INTO hugs (hug_id, direction, link_id, sender, source_band, payload, "
                "receipt, created_at, updated_at, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hug.hug_id,
                    direction,
                    link_id,
                    hug.sender,
                    source_band,
                    json.dumps(hug.to_payload()),
                    int(receipt),
                    now,
                    now,
                    via,
                ),
            ).rowcount
            > 0
        )

    def mark_missed(self, db: sqlite3.Connection, hug_id: str, now: float) -> None:
        db.execute("UPDATE hugs SET missed = 1, updated_at = ? WHERE hug_id = ?", (now, hug_id))

    def sent_receipt(self, db: sqlite3.Connection, hug_id: str) -> tuple[Receipt, str] | None:
        """(receipt, source band) of a hug this companion sent, or None."""
        row = db.execute(
            "SELECT receipt, source_band FROM hugs WHERE hug_id = ? AND direction = 'out'", (hug_id,)
        ).fetchone()
        return None if row is None else (Receipt(row[0]), str(row[1]))

    def set_receipt(self, db: sqlite3.Connection, hug_id: str, receipt: Receipt, now: float) -> None:
        db.execute(
            "UPDATE hugs SET receipt = ?, updated_at = ? WHERE hug_id = ?", (int(receipt), now, hug_id)
        )

    def history(self, limit: int = 200) -> list[HistoryEntry]:
        """Hugs sent and received, newest first."""
        rows = self.db.execute(
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

    # ------------------------------------------------------------------ plays

    def add_play(
        self,
        db: sqlite3.Connection,
        hug_id: str,
        band: str,
        not_before: float,
        age_from: float,
        spec: PlaySpec = NO_SPEC,
        shared: bool = False,
    ) -> None:
        """A play of ``hug_id`` on ``band`` with the band's next token (fixed now, kept on resends).
        On a ``shared`` (co-owned) band the token comes from the hug itself, so every owner sends
        the same Play and the band, which remembers the tokens it played, buzzes it once."""
        if shared:
            token = shared_token(band, hug_id)
        else:
            row = db.execute("SELECT next FROM band_tokens WHERE band = ?", (band,)).fetchone()
            token = int(row[0]) if row else int.from_bytes(hashlib.sha256(band.encode()).digest()[:2], "big")
            db.execute(
                "INSERT INTO band_tokens (band, next) VALUES (?, ?) "
                "ON CONFLICT(band) DO UPDATE SET next = excluded.next",
                (band, (token + 1) & 0xFFFF),
            )
        db.execute(
            "INSERT OR IGNORE INTO plays (hug_id, band, token, pattern, signature, intensity, repeat, "
            "not_before, age_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    def open_plays(self) -> list[Play]:
        """Plays pending or sent and not yet felt, in the order they became due."""
        rows = self.db.execute(
            "SELECT p.hug_id, p.band, p.token, p.pattern, p.signature, p.intensity, p.repeat, p.not_before, "
            "p.age_from, p.state, p.sent_at, h.payload, h.link_id "
            "FROM plays p LEFT JOIN hugs h ON h.hug_id = p.hug_id "
            "WHERE p.state IN ('pending', 'sent') ORDER BY p.not_before, p.rowid"
        ).fetchall()
        return [
            Play(
                r[0],
                r[1],
                r[2],
                PlaySpec(r[3], r[4], r[5], r[6]),
                r[7],
                r[8],
                r[9],
                r[10],
                None if r[11] is None else Hug.from_payload(json.loads(r[11])),
                r[12] or "",
            )
            for r in rows
        ]

    def clock_went_back(self, now: float, latest: float) -> None:
        """The wall clock went back from ``latest`` to ``now``: plays sent "later" than ``now`` were
        sent now, and plays due by ``latest`` are due now (a hold beyond it, to the end of the quiet
        hours, stays: that is a time of day)."""
        with self.transaction() as db:
            db.execute("UPDATE plays SET sent_at = ? WHERE sent_at > ?", (now, now))
            db.execute(
                "UPDATE plays SET not_before = ? "
                "WHERE state = 'pending' AND not_before > ? AND not_before <= ?",
                (now, now, latest),
            )

    def latest_time(self) -> float:
        """The latest time this companion's clock stamped on a hug or a play (0 if none)."""
        row = self.db.execute(
            "SELECT MAX(t) FROM "
            "(SELECT MAX(created_at) AS t FROM hugs UNION ALL SELECT MAX(sent_at) FROM plays)"
        ).fetchone()
        return float(row[0] or 0.0)

    def hold(self, hug_id: str, band: str, until: float) -> None:
        """Keep a play until ``until``; its age then counts from there."""
        with self.transaction() as db:
            db.execute(
                "UPDATE plays SET not_before = ?, age_from = ? WHERE hug_id = ? AND band = ?",
                (until, until, hug_id, band),
            )

    def mark_sent(self, plays: list[Play], spec: PlaySpec, token: int, now: float) -> None:
        """These plays went to their band as one Play frame (``spec``, ``token``): a resend repeats it."""
        with self.transaction() as db:
            for p in plays:
                db.execute(
                    "UPDATE plays SET state = 'sent', sent_at = ?, token = ?, pattern = ?, signature = ?, "
                    "intensity = ?, repeat = ? WHERE hug_id = ? AND band = ? AND state != 'felt'",
                    (now, token, spec.pattern, spec.signature, spec.intensity, spec.repeat, p.hug_id, p.band),
                )

    def mark_play_missed(self, hug_id: str, band: str, now: float) -> None:
        """Never buzzed: the play and its hug show as missed."""
        with self.transaction() as db:
            db.execute("UPDATE plays SET state = 'missed' WHERE hug_id = ? AND band = ?", (hug_id, band))
            self.mark_missed(db, hug_id, now)

    def recent_buzzes(self, band: str, since: float) -> list[float]:
        """When ``band`` was sent each hug buzz (one per token, ticks aside) after ``since``, oldest first."""
        rows = self.db.execute(
            "SELECT sent_at FROM plays WHERE band = ? AND sent_at > ? AND hug_id NOT LIKE 'tick:%' "
            "GROUP BY token ORDER BY sent_at",
            (band, since),
        ).fetchall()
        return [float(r[0]) for r in rows]

    def tick_waiting(self, db: sqlite3.Connection, band: str) -> bool:
        """A felt tick is already waiting to play on ``band``."""
        return (
            db.execute(
                "SELECT 1 FROM plays WHERE band = ? AND state = 'pending' AND hug_id LIKE 'tick:%'", (band,)
            ).fetchone()
            is not None
        )

    def mark_felt(self, db: sqlite3.Connection, band: str, token: int, now: float) -> list[Felt]:
        """The band played what was sent with ``token`` (by this companion, or by a co-owner whose
        Play carried the same token: then the play here is still pending): those plays are felt."""
        felt: list[Felt] = []
        rows = db.execute(
            "SELECT hug_id FROM plays WHERE band = ? AND token = ? AND state IN ('sent', 'pending')",
            (band, token),
        ).fetchall()
        for (hug_id,) in rows:
            db.execute(
                "UPDATE plays SET state = 'felt', felt_at = ? WHERE hug_id = ? AND band = ?",
                (now, hug_id, band),
            )
            hug = db.execute(
                "SELECT direction, link_id, sender, via FROM hugs WHERE hug_id = ?", (hug_id,)
            ).fetchone()
            count = db.execute("SELECT COUNT(*) FROM plays WHERE hug_id = ? AND state = 'felt'", (hug_id,))
            first = int(count.fetchone()[0]) == 1
            direction, link_id, sender, via = hug if hug is not None else ("", "", "", "")
            felt.append(Felt(str(hug_id), str(direction), str(link_id), str(sender), first, str(via)))
        return felt

    def mark_felt_elsewhere(self, db: sqlite3.Connection, band: str, hug_ids: list[str], now: float) -> int:
        """A co-owner says ``band`` played these hugs (or ticks): their plays here are done; how many."""
        done = 0
        for hug_id in hug_ids:
            done += db.execute(
                "UPDATE plays SET state = 'felt', felt_at = ?, sent_at = MAX(sent_at, ?) "
                "WHERE hug_id = ? AND band = ? AND state IN ('pending', 'sent')",
                (now, now, hug_id, band),
            ).rowcount
        return done

    # ------------------------------------------------------------------ reads for screens and the demo

    def felt_hug_ids(self) -> set[str]:
        """Hugs (and ticks) some band here has played."""
        rows = self.db.execute("SELECT DISTINCT hug_id FROM plays WHERE state = 'felt'").fetchall()
        return {str(r[0]) for r in rows}

    def felt_hug_count(self) -> int:
        """How many hugs (ticks aside) some band here has played."""
        row = self.db.execute(
            "SELECT COUNT(DISTINCT hug_id) FROM plays WHERE state = 'felt' AND hug_id NOT LIKE 'tick:%'"
        ).fetchone()
        return int(row[0])

    def felt_buzzes(self, band: str) -> int:
        """How many hug buzzes ``band`` played (folded hugs share one)."""
        row = self.db.execute(
            "SELECT COUNT(DISTINCT token) FROM plays "
            "WHERE band = ? AND state = 'felt' AND hug_id NOT LIKE 'tick:%'",
            (band,),
        ).fetchone()
        return int(row[0])

    def sent_times(self, band: str) -> dict[str, float]:
        """hug id -> when its play was sent to ``band`` (ticks aside)."""
        rows = self.db.execute(
            "SELECT hug_id, sent_at FROM plays WHERE band = ? AND hug_id NOT LIKE 'tick:%'", (band,)
        ).fetchall()
        return {str(r[0]): float(r[1]) for r in rows}
