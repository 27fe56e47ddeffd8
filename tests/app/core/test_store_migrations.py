"""Numbered migrations from the previous schema, with data: a store written before wearers (schema 3)
opens, its bands worn by the companion's own member, and keeps working."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from test_router import TZ, Clock, FakeBands, at

from hugapp.core import relaystore as rs
from hugapp.core.notify import DesktopNotifier
from hugapp.core.router import Router
from hugapp.core.store import MIGRATIONS, Store
from hugproto import frames

BAND = "C0:FF:EE:00:00:01"
OTHER = "C0:FF:EE:00:00:02"
ME = "a" * 32


def schema_3_store(path: Path, *, identity: bool = True) -> None:
    """A store as the app before wearers left it: two bands, a press, a hug, a circle member."""
    db = sqlite3.connect(path, isolation_level=None)
    for version, sql in enumerate(MIGRATIONS[:3], start=1):
        for statement in sql.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
    for address in (BAND, OTHER):
        db.execute(
            "INSERT INTO bands (address, name, key, model, added_at) VALUES (?, 'band', ?, '', 1)",
            (address, bytes(16)),
        )
    if identity:
        db.execute(
            "INSERT INTO relay_identity VALUES (1, ?, 'Mum', ?, ?, 'hug-x', 1)", (ME, "b" * 32, bytes(32))
        )
    db.execute("INSERT INTO links VALUES (?, ?, 'family', 1)", ("l" * 32, bytes(32)))
    db.execute(
        "INSERT INTO link_members VALUES (?, ?, 'Dad', ?, ?, 2, 1)", ("l" * 32, "d" * 32, "e" * 32, bytes(32))
    )
    db.execute(
        "INSERT INTO hugs (hug_id, direction, link_id, sender, source_band, payload, created_at, updated_at) "
        "VALUES ('h1', 'in', ?, ?, '', ?, 1, 1)",
        (
            "l" * 32,
            "d" * 32,
            '{"v": 1, "id": "h1", "from": "' + "d" * 32 + '", "gesture": "tap", "value": 1, '
            '"duration_ms": 0, "pressed_at": 1.0, "count": 1}',
        ),
    )
    db.close()


def test_bands_of_a_schema_3_store_become_worn_by_its_own_member(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    schema_3_store(path)
    store = Store(path)
    assert store.schema_version == len(MIGRATIONS) == 4
    assert [b.wearer for b in store.bands()] == [ME, ME]
    assert store.owners() == []
    (dad,) = rs.members(store, "l" * 32)
    assert (dad.name, dad.served_by, dad.phoneless) == ("Dad", (), False)
    (h1,) = store.db.execute("SELECT hug_id, via FROM hugs").fetchall()
    assert h1 == ("h1", ""), "a hug from before has no relaying companion: its sender sent it"
    assert rs.wearers(store) == []
    store.close()
    Store(path).close()  # opening again migrates nothing


def test_a_migrated_store_keeps_routing_as_before(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    schema_3_store(path)
    clock = Clock(at("2026-11-21T12:00"))
    store = Store(path, clock=clock)
    me = rs.ensure_identity(store, "Mum")
    assert me.member_id == ME
    bands = FakeBands()
    bands.up.update({BAND, OTHER})
    router = Router(store, me, bands, DesktopNotifier(), clock=clock, tz=TZ)
    store.record_press(BAND, 1, frames.GESTURE_TAP, 1, 80, 0)
    router.route_presses()
    (out,) = [h for h in router.history() if h.direction == "out"]
    assert out.hug.sender == ME, "a press is a hug from the companion's own member"
    assert [i.recipient for i in rs.outbox_items(store)] == ["d" * 32]
    asyncio.run(router.deliver())
    assert [b for b, _s, _t in bands.played] == [OTHER], "the other band here plays it, as before"


def test_a_schema_3_store_without_an_identity_gets_its_bands_once_it_has_one(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    schema_3_store(path, identity=False)
    store = Store(path)
    assert [b.wearer for b in store.bands()] == ["", ""], "'' means this companion's own member"
    me = rs.ensure_identity(store, "Home")
    router = Router(store, me, FakeBands(), DesktopNotifier(), tz=TZ)
    assert router.coowners.wearer_of(BAND) == me.member_id
