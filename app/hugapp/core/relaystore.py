"""Relay data in the companion's SQLite store (migration 2 of hugapp.core.store).

Identity of this companion, circles ("links") with their members, the durable outbox of messages to
other phones and the ids of messages already received. Functions take a `Store`; those that take a
`db` run inside the caller's transaction so a handler can make its own writes and the dedup mark
atomic (see `mark_seen`).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hugapp.core.store import Store, StoreError
from hugproto.patterns import NUM_SIGNATURES

MAX_NAME = 64  # characters of a member's name
MAX_SIGNATURE = NUM_SIGNATURES - 1  # a member's haptic signature is 1..7 (0 = no motif)
SEEN_RETENTION_S = 30 * 24 * 3600  # message ids are remembered this long; older envelopes are refused


@dataclass(frozen=True)
class Identity:
    """This companion as a circle member. `mailbox` (random) names its inbox topics and is its broker
    user name under deploy/'s ACLs; `member_id` never appears on the wire in clear."""

    member_id: str
    name: str
    mailbox: str
    presence_key: bytes
    client_id: str


@dataclass(frozen=True)
class Link:
    link_id: str
    key: bytes
    name: str
    created_at: float


MAX_SERVED_BY = 8  # companions that may own one phoneless person's band


@dataclass(frozen=True)
class Member:
    """A person of a circle. One with a companion of their own has its mailbox and presence key; one
    without (a child with no phone) has neither, and ``served_by`` names the companions of the circle
    that own their band (they alone may send hugs from that person)."""

    link_id: str
    member_id: str
    name: str
    mailbox: str
    presence_key: bytes
    signature: int
    served_by: tuple[str, ...] = ()

    @property
    def phoneless(self) -> bool:
        return not self.mailbox

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "id": self.member_id,
            "name": self.name,
            "mailbox": self.mailbox,
            "presence_key": self.presence_key.hex(),
            "signature": self.signature,
        }
        if self.served_by:
            wire["served_by"] = list(self.served_by)
        return wire

    @staticmethod
    def from_wire(link_id: str, d: Mapping[str, Any]) -> Member:
        """Build a member from a (decrypted, authenticated) dict; StoreError when any field is wrong."""
        fields = {k: d.get(k) for k in ("id", "name", "mailbox", "presence_key", "signature")}
        if not all(isinstance(fields[k], str) for k in ("id", "name", "mailbox", "presence_key")):
            raise StoreError("malformed member record: id, name, mailbox and presence key are text")
        try:
            key = bytes.fromhex(str(fields["presence_key"]))
        except ValueError:
            raise StoreError("malformed member record: the presence key is not hex") from None
        sig = fields["signature"]
        if type(sig) is not int:  # not a bool, a float (Infinity, NaN) or text
            raise StoreError(f"malformed member record: signature {sig!r:.20} is not a whole number")
        raw_served = d.get("served_by", [])
        if not isinstance(raw_served, list) or len(raw_served) > MAX_SERVED_BY:  # pyright: ignore[reportUnknownArgumentType]
            raise StoreError(f"malformed member record: served_by is a list of at most {MAX_SERVED_BY}")
        served: list[Any] = raw_served  # pyright: ignore[reportUnknownVariableType]
        if not all(isinstance(x, str) for x in served):
            raise StoreError("malformed member record: served_by holds member ids")
        return check_member(
            Member(
                link_id,
                str(fields["id"]),
                str(fields["name"]),
                str(fields["mailbox"]),
                key,
                sig,
                tuple(str(x) for x in served),
            )
        )


def check_member(m: Member) -> Member:
    """The one rule for a member record, wherever it comes from (the wire, linking, the window)."""
    if m.phoneless:  # a person served by the companions owning their band
        if m.presence_key or not m.served_by or len(m.served_by) > MAX_SERVED_BY:
            raise StoreError("malformed member record: a person without a phone is served by a companion")
        if not _is_hex(m.member_id, 32) or not all(_is_hex(x, 32) for x in m.served_by):
            raise StoreError("malformed member record")
    elif m.served_by or not (
        _is_hex(m.member_id, 32) and _is_hex(m.mailbox, 32) and len(m.presence_key) == 32
    ):
        raise StoreError("malformed member record")
    if not 0 < len(m.name) <= MAX_NAME:
        raise StoreError(f"a member's name has 1..{MAX_NAME} characters")
    check_signature(m.signature)
    return m


def check_signature(signature: object) -> int:
    """A member's haptic signature: a whole number 1..MAX_SIGNATURE, or StoreError."""
    if type(signature) is not int or not 1 <= signature <= MAX_SIGNATURE:
        raise StoreError(f"signature {signature!r:.20} is not in 1..{MAX_SIGNATURE}")
    return signature


@dataclass(frozen=True)
class OutboxItem:
    msg_id: str
    recipient: str
    link_id: str
    type: str
    payload: dict[str, Any]
    sent_at: float
    last_publish: float
    attempts: int
    acked_at: float | None


def _is_hex(s: str, n: int) -> bool:
    return len(s) == n and all(c in "0123456789abcdef" for c in s)


def new_id() -> str:
    """A random 128-bit id as 32 lowercase hex characters (member, link, mailbox, message ids)."""
    return secrets.token_hex(16)


# ---- identity


def identity(store: Store) -> Identity | None:
    row = store.db.execute(
        "SELECT member_id, name, mailbox, presence_key, client_id FROM relay_identity WHERE id = 1"
    ).fetchone()
    return Identity(*row) if row is not None else None


def ensure_identity(store: Store, name: str) -> Identity:
    """This companion's identity, created (random ids and keys) on first use; `name` is only used then."""
    if not 0 < len(name.strip()) <= MAX_NAME:
        raise StoreError(f"a name has 1..{MAX_NAME} characters")
    with store.transaction() as db:
        db.execute(
            "INSERT OR IGNORE INTO relay_identity (id, member_id, name, mailbox, presence_key, client_id, "
            "created_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
            (new_id(), name.strip(), new_id(), secrets.token_bytes(32), "hug-" + new_id(), store.now()),
        )
    me = identity(store)
    assert me is not None
    return me


def rename_identity(store: Store, name: str) -> None:
    if not 0 < len(name.strip()) <= MAX_NAME:
        raise StoreError(f"a name has 1..{MAX_NAME} characters")
    with store.transaction() as db:
        db.execute("UPDATE relay_identity SET name = ? WHERE id = 1", (name.strip(),))


# ---- links and members


def save_link(db: sqlite3.Connection, link_id: str, key: bytes, name: str, now: float) -> None:
    if len(key) != 32:
        raise StoreError("a link key has 32 bytes")
    db.execute(
        "INSERT INTO links (link_id, key, name, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(link_id) DO UPDATE SET key = excluded.key",
        (link_id, key, name, now),
    )


def link(store: Store, link_id: str) -> Link | None:
    row = store.db.execute(
        "SELECT link_id, key, name, created_at FROM links WHERE link_id = ?", (link_id,)
    ).fetchone()
    return Link(*row) if row is not None else None


def links(store: Store) -> list[Link]:
    rows = store.db.execute("SELECT link_id, key, name, created_at FROM links ORDER BY created_at").fetchall()
    return [Link(*r) for r in rows]


def forget_link(store: Store, link_id: str) -> None:
    """Leave a circle locally: its members, key and pending outbox go."""
    with store.transaction() as db:
        drop_link(db, link_id)


def drop_link(db: sqlite3.Connection, link_id: str) -> None:
    """`forget_link` inside the caller's transaction."""
    db.execute("DELETE FROM relay_outbox WHERE link_id = ? AND acked_at IS NULL", (link_id,))
    db.execute("DELETE FROM links WHERE link_id = ?", (link_id,))


def save_member(db: sqlite3.Connection, member: Member, now: float) -> None:
    """Store a member (checked: :func:`check_member`; StoreError changes nothing)."""
    check_member(member)
    db.execute(
        "INSERT INTO link_members (link_id, member_id, name, mailbox, presence_key, signature, added_at, "
        "served_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(link_id, member_id) DO UPDATE SET "
        "name = excluded.name, mailbox = excluded.mailbox, presence_key = excluded.presence_key, "
        "signature = excluded.signature, served_by = excluded.served_by",
        (
            member.link_id,
            member.member_id,
            member.name,
            member.mailbox,
            member.presence_key,
            member.signature,
            now,
            ",".join(member.served_by),
        ),
    )


def drop_member(db: sqlite3.Connection, link_id: str, member_id: str) -> bool:
    """Remove a member and what is still waiting for them; True if they were a member."""
    db.execute(
        "DELETE FROM relay_outbox WHERE link_id = ? AND recipient = ? AND acked_at IS NULL",
        (link_id, member_id),
    )
    cur = db.execute("DELETE FROM link_members WHERE link_id = ? AND member_id = ?", (link_id, member_id))
    return cur.rowcount > 0


_MEMBER_COLS = "link_id, member_id, name, mailbox, presence_key, signature, served_by"


def _member(row: tuple[Any, ...]) -> Member:
    served = str(row[6])
    return Member(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        bytes(row[4]),
        int(row[5]),
        tuple(served.split(",")) if served else (),
    )


def members(store: Store, link_id: str) -> list[Member]:
    rows = store.db.execute(
        f"SELECT {_MEMBER_COLS} FROM link_members WHERE link_id = ? ORDER BY added_at, member_id", (link_id,)
    ).fetchall()
    return [_member(r) for r in rows]


def member(store: Store, link_id: str, member_id: str) -> Member | None:
    row = store.db.execute(
        f"SELECT {_MEMBER_COLS} FROM link_members WHERE link_id = ? AND member_id = ?", (link_id, member_id)
    ).fetchone()
    return _member(row) if row is not None else None


def person(store: Store, member_id: str) -> Member | None:
    """A person by id in any circle of this companion (their first record), or a wearer served here
    and in no circle yet (link id ""), else None."""
    row = store.db.execute(
        f"SELECT {_MEMBER_COLS} FROM link_members WHERE member_id = ? ORDER BY added_at LIMIT 1", (member_id,)
    ).fetchone()
    if row is not None:
        return _member(row)
    found = store.db.execute(
        "SELECT member_id, name, signature FROM wearers WHERE member_id = ?", (member_id,)
    ).fetchone()
    return None if found is None else Member("", found[0], found[1], "", b"", found[2])


# ---- wearers: people without a companion whose bands this companion owns


@dataclass(frozen=True)
class Wearer:
    member_id: str
    name: str
    signature: int


def wearers(store: Store) -> list[Wearer]:
    rows = store.db.execute("SELECT member_id, name, signature FROM wearers ORDER BY added_at").fetchall()
    return [Wearer(*r) for r in rows]


def add_wearer(store: Store, name: str, member_id: str | None = None, signature: int = 0) -> Wearer:
    """A person without a companion of their own (``name``; a new id unless given), served here."""
    if not 0 < len(name.strip()) <= MAX_NAME:
        raise StoreError(f"a name has 1..{MAX_NAME} characters")
    wearer = Wearer(member_id or new_id(), name.strip(), signature)
    with store.transaction() as db:
        db.execute(
            "INSERT INTO wearers (member_id, name, signature, added_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(member_id) DO UPDATE SET name = excluded.name",
            (wearer.member_id, wearer.name, wearer.signature, store.now()),
        )
    return wearer


def free_signature(taken: Iterable[int]) -> int:
    """The smallest haptic signature not yet used in a circle (wraps to sharing when all are taken)."""
    used = set(taken)
    for s in range(1, MAX_SIGNATURE + 1):
        if s not in used:
            return s
    return len(used) % MAX_SIGNATURE + 1


# ---- outbox


def outbox_add(  # the relay's Outbox is the one caller
    db: sqlite3.Connection,
    msg_id: str,
    link_id: str,
    recipients: Iterable[str],
    type_: str,
    payload: Mapping[str, Any],
    sent_at: float,
) -> None:
    body = json.dumps(dict(payload), separators=(",", ":"), sort_keys=True)
    db.executemany(
        "INSERT INTO relay_outbox (msg_id, recipient, link_id, type, payload, sent_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(msg_id, r, link_id, type_, body, sent_at) for r in recipients],
    )


_OUTBOX_COLS = "msg_id, recipient, link_id, type, payload, sent_at, last_publish, attempts, acked_at"


def _outbox_item(row: tuple[Any, ...]) -> OutboxItem:
    return OutboxItem(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7], row[8])


def outbox_pending(
    store: Store, due_before: float | None = None, recipient: str | None = None
) -> list[OutboxItem]:
    """Unacknowledged messages, oldest first; `due_before`: only those last published before it."""
    sql = f"SELECT {_OUTBOX_COLS} FROM relay_outbox WHERE acked_at IS NULL"
    args: list[Any] = []
    if due_before is not None:
        sql += " AND last_publish <= ?"
        args.append(due_before)
    if recipient is not None:
        sql += " AND recipient = ?"
        args.append(recipient)
    rows = store.db.execute(sql + " ORDER BY sent_at, msg_id", args).fetchall()
    return [_outbox_item(r) for r in rows]


def outbox_items(store: Store, msg_id: str | None = None) -> list[OutboxItem]:
    if msg_id is None:
        rows = store.db.execute(
            f"SELECT {_OUTBOX_COLS} FROM relay_outbox ORDER BY sent_at, msg_id"
        ).fetchall()
    else:
        rows = store.db.execute(
            f"SELECT {_OUTBOX_COLS} FROM relay_outbox WHERE msg_id = ? ORDER BY recipient", (msg_id,)
        ).fetchall()
    return [_outbox_item(r) for r in rows]


def outbox_published(store: Store, msg_id: str, recipient: str) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE relay_outbox SET last_publish = ?, attempts = attempts + 1 "
            "WHERE msg_id = ? AND recipient = ?",
            (store.now(), msg_id, recipient),
        )


def outbox_clamp(store: Store, now: float) -> None:
    """After the wall clock went back: publish times in the future become `now`."""
    with store.transaction() as db:
        db.execute("UPDATE relay_outbox SET last_publish = ? WHERE last_publish > ?", (now, now))


def outbox_acked(store: Store, msg_id: str, recipient: str) -> bool:
    """Record the end-to-end ack; True only the first time (the 'delivered' receipt fires once)."""
    with store.transaction() as db:
        cur = db.execute(
            "UPDATE relay_outbox SET acked_at = ? WHERE msg_id = ? AND recipient = ? AND acked_at IS NULL",
            (store.now(), msg_id, recipient),
        )
        return cur.rowcount > 0


def outbox_expire(store: Store, before: float) -> int:
    """Give up on messages created before `before` (recipients would refuse them as stale)."""
    with store.transaction() as db:
        return db.execute(
            "DELETE FROM relay_outbox WHERE acked_at IS NULL AND sent_at < ?", (before,)
        ).rowcount


# ---- received message ids


def seen(store: Store, msg_id: str) -> bool:
    return store.db.execute("SELECT 1 FROM relay_seen WHERE msg_id = ?", (msg_id,)).fetchone() is not None


def mark_seen(db: sqlite3.Connection, msg_id: str, link_id: str, sender: str, now: float) -> bool:
    """Record a received message id; False if it was already recorded.

    A message handler that calls this inside the same transaction as its own durable write gets
    exactly-once even if the companion is killed right after that write (the relay then finds the
    id recorded and only re-acknowledges)."""
    cur = db.execute(
        "INSERT OR IGNORE INTO relay_seen (msg_id, link_id, sender, received_at) VALUES (?, ?, ?, ?)",
        (msg_id, link_id, sender, now),
    )
    return cur.rowcount > 0


def seen_count(store: Store) -> int:
    return int(store.db.execute("SELECT COUNT(*) FROM relay_seen").fetchone()[0])


def prune_seen(store: Store, before: float) -> int:
    with store.transaction() as db:
        return db.execute("DELETE FROM relay_seen WHERE received_at < ?", (before,)).rowcount


def next_presence_epoch(store: Store) -> int:
    """The epoch of this companion's next broker session: one more than the last, durable, so its
    presence messages are ordered across restarts (a receiver ignores anything not newer)."""
    with store.transaction() as db:
        row = db.execute("SELECT value FROM settings WHERE key = 'presence_epoch'").fetchone()
        epoch = int(row[0]) + 1 if row is not None else 1
        db.execute(
            "INSERT INTO settings (key, value) VALUES ('presence_epoch', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(epoch),),
        )
    return epoch
