"""Numbered migrations from the previous schemas, with data: a store written before wearers (schema 3,
bands by address; schema 4, bands by band id) opens through migrations 4 and 5, its bands worn by the
companion's own member, and keeps working."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from test_router import TZ, Clock, FakeBands, at

from hugapp.core import relaystore as rs
from hugapp.core.notify import DesktopNotifier
from hugapp.core.router import Router
from hugapp.core.store import MIGRATIONS, Store
from hugproto import frames

BAND = "C0:FF:EE:00:00:01"
OTHER = "C0:FF:EE:00:00:02"
ME = "a" * 32


def at_schema(path: Path, schema: int) -> sqlite3.Connection:
    """An empty store as migrations 1..``schema`` leave it."""
    db = sqlite3.connect(path, isolation_level=None)
    for version, sql in enumerate(MIGRATIONS[:schema], start=1):
        for statement in sql.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
    return db


def old_store(path: Path, *, identity: bool = True, schema: int = 3) -> None:
    """A store as the app before wearers left it (schema 3: bands by address; 4: by band id): two
    bands, a hug, a circle member."""
    db = at_schema(path, schema)
    column = "address" if schema == 3 else "band_id"
    for band in (BAND, OTHER):
        db.execute(
            f"INSERT INTO bands ({column}, name, key, model, added_at) VALUES (?, 'band', ?, '', 1)",
            (band, bytes(16)),
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


@pytest.mark.parametrize("schema", [3, 4])
def test_bands_of_an_old_store_become_worn_by_its_own_member(tmp_path: Path, schema: int) -> None:
    path = tmp_path / "old.sqlite3"
    old_store(path, schema=schema)
    store = Store(path)
    assert store.schema_version == len(MIGRATIONS) == 7
    assert [(b.band_id, b.wearer) for b in store.bands()] == [(BAND, ME), (OTHER, ME)]
    assert store.owners() == []
    (dad,) = rs.members(store, "l" * 32)
    assert (dad.name, dad.served_by, dad.phoneless) == ("Dad", (), False)
    (h1,) = store.db.execute("SELECT hug_id, via FROM hugs").fetchall()
    assert h1 == ("h1", ""), "a hug from before has no relaying companion: its sender sent it"
    assert rs.wearers(store) == []
    store.close()
    Store(path).close()  # opening again migrates nothing


def test_a_band_enrolled_at_a_hub_before_hub_names_keeps_its_hub(tmp_path: Path) -> None:
    """Schema 6 (hubs without names) opens through migration 7: the enrolment stands, unnamed."""
    path = tmp_path / "old.sqlite3"
    db = at_schema(path, 6)
    db.execute(
        "INSERT INTO bands (band_id, name, key, model, added_at) VALUES (?, 'band', ?, '', 1)",
        (BAND, bytes(16)),
    )
    db.execute("INSERT INTO band_hubs VALUES (?, 'e1', ?, 1)", (BAND, bytes(range(32))))
    db.close()
    store = Store(path)
    assert store.schema_version == 7
    assert store.band_hub(BAND) == ("e1", bytes(range(32)))
    assert store.band_hub_name(BAND) == ""
    store.save_band_hub(BAND, "e2", bytes(32), "Class 2")
    assert (store.band_hub(BAND), store.band_hub_name(BAND)) == (("e2", bytes(32)), "Class 2")
    store.close()


@pytest.mark.parametrize("schema", [3, 4])
def test_a_migrated_store_keeps_routing_as_before(tmp_path: Path, schema: int) -> None:
    path = tmp_path / "old.sqlite3"
    old_store(path, schema=schema)
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
    old_store(path, identity=False)
    store = Store(path)
    assert [b.wearer for b in store.bands()] == ["", ""], "'' means this companion's own member"
    me = rs.ensure_identity(store, "Home")
    router = Router(store, me, FakeBands(), DesktopNotifier(), tz=TZ)
    assert router.coowners.wearer_of(BAND) == me.member_id


def test_co_owners_of_a_migrated_store_are_kept_by_band_id(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old_store(path)
    store = Store(path)
    store.add_owner(BAND, "l" * 32, "d" * 32)
    assert [(o.band_id, o.member_id) for o in store.owners()] == [(BAND, "d" * 32)]
    store.forget_band(BAND)
    assert store.owners() == [], "a band forgotten here has no co-owners left here"
    assert [b.band_id for b in store.bands()] == [OTHER]
