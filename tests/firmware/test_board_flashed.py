"""hugband.board.flashed(): the board file `hugbutton band build` puts at the root of the band's flash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hugapp import bandtools
from hugband import board


def test_the_built_board_file_is_what_the_band_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bandtools.build("xiao_esp32s3", tmp_path, progress=False)
    monkeypatch.chdir(tmp_path)  # the band's working directory is the root of its flash
    b = board.flashed()
    assert b == board.load("xiao_esp32s3")
    assert b["touch_pin"] is not None
    assert b["button_pin"] is None
    assert b["touch_rises"]


def test_without_a_board_file_the_band_takes_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert board.flashed()["name"] == board.DEFAULT


def test_a_broken_board_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / board.FLASHED).write_text("{not json")
    with pytest.raises(board.BoardError, match=r"board\.json is not valid JSON"):
        board.flashed()
    bad = board.load("xiao_esp32c3")
    bad["mcu"] = "esp32c9"
    (tmp_path / board.FLASHED).write_text(json.dumps(bad))
    with pytest.raises(board.BoardError, match="board xiao_esp32c3: unknown mcu 'esp32c9'"):
        board.flashed()
