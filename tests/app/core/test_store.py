"""The companion's store: schema migrations keep what was stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hugapp.core.store import MIGRATIONS, Store


def test_bands_stored_by_address_keep_their_rows_as_band_ids(tmp_path: Path) -> None:
    """Migration 4: a store from before private addresses (bands by BLE address) opens with each
    band's old address as its band id, its key and presses unchanged."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for statement in "".join(MIGRATIONS[:3]).split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 3")
    db.execute(
        "INSERT INTO bands (address, name, key, added_at) VALUES ('C0:FF:EE:00:00:01', 'Mia''s band', ?, 1)",
        (bytes(range(16)),),
    )
    db.execute(
        "INSERT INTO presses (band, seq, gesture, value, duration_ms, pressed_at, received_at) "
        "VALUES ('C0:FF:EE:00:00:01', 7, 1, 2, 0, 1, 1)"
    )
    db.commit()
    db.close()
    store = Store(path)
    assert store.schema_version == len(MIGRATIONS)
    (band,) = store.bands()
    assert (band.band_id, band.name, band.key) == ("C0:FF:EE:00:00:01", "Mia's band", bytes(range(16)))
    assert [p.seq for p in store.presses(band.band_id)] == [7]
    store.close()
