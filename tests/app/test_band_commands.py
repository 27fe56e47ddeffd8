"""`hugbutton band build` and `band flash` as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from hugapp import bandtools


def hugbutton(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hugapp.cli", *args], capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("board", bandtools.board_names())
def test_build_compiles_every_module_for_the_board(board: str, tmp_path: Path) -> None:
    out = tmp_path / board
    proc = hugbutton("band", "build", "--board", board, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for package in ("hugproto", "hugband"):
        sources = {p.stem for p in Path(str(resources.files(package))).glob("*.py")}
        built = {p.stem for p in (out / "lib" / package).glob("*.mpy")}
        assert built == sources - {"day", "main"}, package
        for mpy in (out / "lib" / package).glob("*.mpy"):
            assert mpy.read_bytes()[:2] == b"M\x06", f"{mpy} is not MicroPython 1.29 bytecode"
    assert (out / "main.py").is_file()
    assert (out / "board.json").read_text().count(board) >= 1


def test_unknown_board_is_a_clear_error(tmp_path: Path) -> None:
    proc = hugbutton("band", "build", "--board", "nosuch", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert "nosuch" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_flash_without_a_board_says_so_and_changes_nothing(tmp_path: Path) -> None:
    proc = hugbutton(
        "band", "flash", "--board", "xiao_esp32c3", "--port", "/dev/ttyNOBAND9", "--out", str(tmp_path / "b")
    )
    assert proc.returncode == 2
    assert "no board answers at /dev/ttyNOBAND9" in proc.stderr
    assert not (tmp_path / "b").exists()
