"""What this installed app is (hugapp.ui.phonemode): a family phone unless the phone chose the hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from hugapp.ui.phonemode import FAMILY_MODE, HUB_MODE, MODE_FILE, hub_folder, read_mode, set_mode


def test_a_new_phone_is_a_family_phone(tmp_path: Path) -> None:
    assert read_mode(tmp_path) == FAMILY_MODE
    assert read_mode(tmp_path / "not yet made") == FAMILY_MODE


def test_the_choice_is_kept_both_ways(tmp_path: Path) -> None:
    data = tmp_path / "data"  # made when the choice is first kept
    set_mode(data, HUB_MODE)
    assert read_mode(data) == HUB_MODE
    set_mode(data, FAMILY_MODE)
    assert read_mode(data) == FAMILY_MODE
    set_mode(data, HUB_MODE)
    assert read_mode(data) == HUB_MODE
    assert [p.name for p in data.iterdir()] == [MODE_FILE]  # no temporary file left behind
    assert hub_folder(data) == data / "hub"  # the hub's enrolments, apart from the family's data


@pytest.mark.parametrize(
    "content", [b"", b"gateway\n", b"HUB_MODE\n", b"hub please", b"\xff\xfehub", b"hub" * 10_000]
)
def test_a_damaged_marker_reads_as_a_family_phone(tmp_path: Path, content: bytes) -> None:
    """Anything but a mode in the marker never keeps the family app from opening."""
    (tmp_path / MODE_FILE).write_bytes(content)
    assert read_mode(tmp_path) == FAMILY_MODE


def test_an_unreadable_marker_reads_as_a_family_phone(tmp_path: Path) -> None:
    (tmp_path / MODE_FILE).mkdir()  # reading it fails (IsADirectoryError)
    assert read_mode(tmp_path) == FAMILY_MODE


@pytest.mark.parametrize("mode", ["gateway", "HUB_MODE", " hub", "", "hub\n"])
def test_an_unknown_mode_is_refused_and_nothing_written(tmp_path: Path, mode: str) -> None:
    with pytest.raises(ValueError, match="is not a phone mode"):
        set_mode(tmp_path / "fresh", mode)
    assert not (tmp_path / "fresh").exists()
    set_mode(tmp_path, HUB_MODE)
    with pytest.raises(ValueError, match="'family' or 'hub'"):
        set_mode(tmp_path, mode)
    assert read_mode(tmp_path) == HUB_MODE
    assert (tmp_path / MODE_FILE).read_text() == "hub\n"
