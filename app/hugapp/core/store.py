"""Durable state of one companion in SQLite: bands (by band id), presses, and (later migrations) links
and hugs.

Every write is a transaction with synchronous=FULL in WAL mode, so a companion killed at any
instant restarts with either all of a change or none of it. The schema evolves through numbered
migrations (PRAGMA user_version); add a migration, never edit an old one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "hugbutton"
PRESS_DEDUP_WINDOW_S = 30 * 24 * 3600  # a band's u16 seq may come round again after that


class StoreError(Exception):
    """The store cannot do what was asked (unknown band, bad value)."""


MIGRATIONS: list[str] = [
    # 1: bands and the presses they sent
    """
    CREATE TABLE bands (
        address TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key BLOB NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        added_at REAL NOT NULL,
        last_seen REAL NOT NULL DEFAULT 0,
        battery INTEGER NOT NULL DEFAULT -1
    );
    CREATE TABLE presses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        band TEXT NOT NULL,
        seq INTEGER NOT NULL,
        gesture INTEGER NOT NULL,
        value INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        pressed_at REAL NOT NULL,
        received_at REAL NOT NULL,
        routed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX presses_band_seq ON presses (band, seq);
    CREATE INDEX presses_unrouted ON presses (routed) WHERE routed = 0;
    """,
    # 2: relay (hugapp.core.relaystore): this companion's identity, circles (links) and their members,
    # the durable outbox of sealed messages, and the message ids already received (dedup)
    """
    CREATE TABLE relay_identity (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        member_id TEXT NOT NULL,
        name TEXT NOT NULL,
        mailbox TEXT NOT NULL,
        presence_key BLOB NOT NULL,
        client_id TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE links (
        link_id TEXT PRIMARY KEY,
        key BLOB NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE TABLE link_members (
        link_id TEXT NOT NULL REFERENCES links (link_id) ON DELETE CASCADE,
        member_id TEXT NOT NULL,
        name TEXT NOT NULL,
        mailbox TEXT NOT NULL,
        presence_key BLOB NOT NULL,
        signature INTEGER NOT NULL,
        added_at REAL NOT NULL,
        PRIMARY KEY (link_id, member_id)
    );
    CREATE TABLE relay_outbox (
        msg_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        link_id TEXT NOT NULL,
        type TEXT NOT NULL,
        payload TEXT NOT NULL,
        sent_at REAL NOT NULL,
        last_publish REAL NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        acked_at REAL,
        PRIMARY KEY (msg_id, recipient)
    );
    CREATE INDEX relay_outbox_pending ON relay_outbox (recipient) WHERE acked_at IS NULL;
    CREATE TABLE relay_seen (
        msg_id TEXT PRIMARY KEY,
        link_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    """,
    # 3: hugs (hugapp.core.hugstore): hugs sent and received, plays per band, settings
    """
    CREATE TABLE hugs (
        hug_id TEXT PRIMARY KEY,
        direction TEXT NOT NULL,
        link_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        source_band TEXT NOT NULL,
        payload TEXT NOT NULL,
        receipt INTEGER NOT NULL DEFAULT 0,
        missed INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE plays (
        hug_id TEXT NOT NULL,
        band TEXT NOT NULL,
        token INTEGER NOT NULL,
        pattern INTEGER NOT NULL,
        signature INTEGER NOT NULL,
        intensity INTEGER NOT NULL,
        repeat INTEGER NOT NULL,
        not_before REAL NOT NULL,
        age_from REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        sent_at REAL NOT NULL DEFAULT 0,
        felt_at REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (hug_id, band)
    );
    CREATE INDEX plays_open ON plays (band, state);
    CREATE TABLE band_tokens (band TEXT PRIMARY KEY, next INTEGER NOT NULL);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)
    """,
    # 4: a band is known by its band id, not by a BLE address (bands change theirs every few
    # minutes); the addresses stored so far stay on as those bands' ids
    """
    ALTER TABLE bands RENAME COLUMN address TO band_id
    """,
    # 5: wearers. A band is worn by one person of the circles ('' = this companion's own member; the
    # bands a store had before are its own member's) and may be co-owned by other companions of a
    # circle (band_owners: who else holds its key). A circle member may be a person with no companion
    # of their own (link_members.served_by: the companions owning their band, comma-separated);
    # wearers: such people this companion serves, kept even before it is in any circle. hugs.via: the
    # companion that relayed a hug (receipts go back to it; '' = the sender itself).
    """
    ALTER TABLE bands ADD COLUMN wearer TEXT NOT NULL DEFAULT '';
    UPDATE bands SET wearer = COALESCE((SELECT member_id FROM relay_identity WHERE id = 1), '');
    CREATE TABLE band_owners (
        band_id TEXT NOT NULL,
        link_id TEXT NOT NULL,
        member_id TEXT NOT NULL,
        PRIMARY KEY (band_id, member_id)
    );
    ALTER TABLE link_members ADD COLUMN served_by TEXT NOT NULL DEFAULT '';
    CREATE TABLE wearers (
        member_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        signature INTEGER NOT NULL,
        added_at REAL NOT NULL
    );
    ALTER TABLE hugs ADD COLUMN via TEXT NOT NULL DEFAULT ''
    """,
    # 6: classroom hubs (hugapp.core.hub): a band enrolled at a hub, with the hub-owner tunnel key
    """
    CREATE TABLE band_hubs (
        band_id TEXT PRIMARY KEY,
        enrolment TEXT NOT NULL,
        tunnel_key BLOB NOT NULL,
        added_at REAL NOT NULL
    )
    """,
    # 7: the hub's name as its operator set it ("Class 2"), for the parent's words
    """
    ALTER TABLE band_hubs ADD COLUMN hub_name TEXT NOT NULL DEFAULT ''
    """,
]


@dataclass(frozen=True)
class Band:
    band_id: str
    name: str
    key: bytes
    model: str
    added_at: float
    last_seen: float
    battery: int
    wearer: str = ""  # the circle member who wears it; "" = this companion's own member


@dataclass(frozen=True)
class Owner:
    """Another companion of a circle holding a band's key (a co-owner)."""

    band_id: str
    link_id: str
    member_id: str


_BAND_COLS = "band_id, name, key, model, added_at, last_seen, battery, wearer"


@dataclass(frozen=True)
class Press:
    id: int
    band: str
    seq: int
    gesture: int
    value: int
    duration_ms: int
    pressed_at: float
    received_at: float


def default_path() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "companion.sqlite3"


class Store:
    def __init__(self, path: Path | str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def now(self) -> float:
        return float(self._clock())

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Generator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise StoreError(f"{self.path} was written by a newer Hug Button (schema {current})")
        for version in range(current + 1, len(MIGRATIONS) + 1):
            with self.transaction() as db:
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")

    # ---- bands

    def save_band(
        self, band_id: str, name: str, key: bytes, model: str = "", wearer: str | None = None
    ) -> Band:
        """Add a band or replace its key (re-pairing); ``wearer`` None keeps the one it had."""
        if len(key) != 16:
            raise StoreError("a band key has 16 bytes")
        with self.transaction() as db:
            db.execute(
                "INSERT INTO bands (band_id, name, key, model, added_at, wearer) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(band_id) DO UPDATE SET key = excluded.key, name = excluded.name, "
                "model = excluded.model",
                (band_id, name, key, model, self.now(), wearer or ""),
            )
            if wearer is not None:
                db.execute("UPDATE bands SET wearer = ? WHERE band_id = ?", (wearer, band_id))
        return self.band(band_id)

    def band(self, band_id: str) -> Band:
        row = self.db.execute(f"SELECT {_BAND_COLS} FROM bands WHERE band_id = ?", (band_id,)).fetchone()
        if row is None:
            raise StoreError(f"no band {band_id} is paired with this phone")
        return Band(*row)

    def bands(self) -> list[Band]:
        rows = self.db.execute(f"SELECT {_BAND_COLS} FROM bands ORDER BY added_at").fetchall()
        return [Band(*row) for row in rows]

    def set_wearer(self, band_id: str, wearer: str) -> None:
        with self.transaction() as db:
            if db.execute("UPDATE bands SET wearer = ? WHERE band_id = ?", (wearer, band_id)).rowcount == 0:
                raise StoreError(f"no band {band_id} is paired with this phone")

    # ---- co-owners (other companions holding a band's key)

    def owners(self, band_id: str | None = None) -> list[Owner]:
        """The co-owners of ``band_id`` (of every band with None)."""
        sql = "SELECT band_id, link_id, member_id FROM band_owners"
        rows = (
            self.db.execute(sql + " WHERE band_id = ? ORDER BY member_id", (band_id,))
            if band_id is not None
            else self.db.execute(sql + " ORDER BY band_id, member_id")
        ).fetchall()
        return [Owner(*r) for r in rows]

    def add_owner(self, band_id: str, link_id: str, member_id: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO band_owners (band_id, link_id, member_id) VALUES (?, ?, ?) "
                "ON CONFLICT(band_id, member_id) DO UPDATE SET link_id = excluded.link_id",
                (band_id, link_id, member_id),
            )

    def rename_band(self, band_id: str, name: str) -> None:
        if not name.strip():
            raise StoreError("a band needs a name")
        with self.transaction() as db:
            if (
                db.execute("UPDATE bands SET name = ? WHERE band_id = ?", (name.strip(), band_id)).rowcount
                == 0
            ):
                raise StoreError(f"no band {band_id} is paired with this phone")

    def forget_band(self, band_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM bands WHERE band_id = ?", (band_id,))
            db.execute("DELETE FROM band_owners WHERE band_id = ?", (band_id,))
            db.execute("DELETE FROM band_hubs WHERE band_id = ?", (band_id,))

    def save_band_hub(self, band_id: str, enrolment: str, tunnel_key: bytes, hub_name: str = "") -> None:
        """The band is enrolled at a hub (one hub per band: a new enrolment replaces the last)."""
        if len(tunnel_key) != 32:
            raise StoreError("a hub tunnel key has 32 bytes")
        self.band(band_id)  # StoreError if unknown
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO band_hubs (band_id, enrolment, tunnel_key, added_at, hub_name)"
                " VALUES (?, ?, ?, ?, ?)",
                (band_id, enrolment, tunnel_key, self.now(), hub_name),
            )

    def band_hub(self, band_id: str) -> tuple[str, bytes] | None:
        """(enrolment id, tunnel key) of the hub serving the band, if any."""
        row = self.db.execute(
            "SELECT enrolment, tunnel_key FROM band_hubs WHERE band_id = ?", (band_id,)
        ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def band_hub_name(self, band_id: str) -> str:
        """The name of the hub serving the band ("" if it has none, or none serves it)."""
        row = self.db.execute("SELECT hub_name FROM band_hubs WHERE band_id = ?", (band_id,)).fetchone()
        return "" if row is None else str(row[0])

    def forget_band_hub(self, band_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM band_hubs WHERE band_id = ?", (band_id,))

    def band_seen(self, band_id: str, battery: int | None = None) -> None:
        with self.transaction() as db:
            if battery is None:
                db.execute("UPDATE bands SET last_seen = ? WHERE band_id = ?", (self.now(), band_id))
            else:
                db.execute(
                    "UPDATE bands SET last_seen = ?, battery = ? WHERE band_id = ?",
                    (self.now(), battery, band_id),
                )

    # ---- presses

    def record_press(
        self, band: str, seq: int, gesture: int, value: int, duration_ms: int, age_s: int
    ) -> bool:
        """Store a press durably; False when (band, seq) was already stored (a resend)."""
        now = self.now()
        with self.transaction() as db:
            dup = db.execute(
                "SELECT 1 FROM presses WHERE band = ? AND seq = ? AND received_at > ?",
                (band, seq, now - PRESS_DEDUP_WINDOW_S),
            ).fetchone()
            if dup is not None:
                return False
            db.execute(
                "INSERT INTO presses (band, seq, gesture, value, duration_ms, pressed_at, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (band, seq, gesture, value, duration_ms, now - age_s, now),
            )
        return True

    def presses(self, band: str | None = None) -> list[Press]:
        sql = "SELECT id, band, seq, gesture, value, duration_ms, pressed_at, received_at FROM presses"
        rows = (
            self.db.execute(sql + " WHERE band = ? ORDER BY id", (band,))
            if band is not None
            else self.db.execute(sql + " ORDER BY id")
        ).fetchall()
        return [Press(*row) for row in rows]

    def unrouted_presses(self) -> list[Press]:
        rows = self.db.execute(
            "SELECT id, band, seq, gesture, value, duration_ms, pressed_at, received_at FROM presses "
            "WHERE routed = 0 ORDER BY id"
        ).fetchall()
        return [Press(*row) for row in rows]

    def mark_routed(self, press_id: int, db: sqlite3.Connection | None = None) -> None:
        """Mark a press handed to the router (pass `db` to do it inside the caller's transaction)."""
        if db is not None:
            db.execute("UPDATE presses SET routed = 1 WHERE id = ?", (press_id,))
            return
        with self.transaction() as tx:
            tx.execute("UPDATE presses SET routed = 1 WHERE id = ?", (press_id,))
