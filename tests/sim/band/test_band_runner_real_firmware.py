"""The real firmware (hugband.main:main) boots on every board file under the runner and stays up."""

import time
from pathlib import Path

import pytest

import hugband
from hugsim.band.runner import run_band

HUGBAND = Path(hugband.__file__).resolve().parent
BOARDS = sorted(p.stem for p in (HUGBAND / "boards").glob("*.json"))
MAIN = HUGBAND / "main.py"


@pytest.mark.skipif(not MAIN.exists() or not BOARDS, reason="firmware/hugband/main.py or boards missing")
@pytest.mark.parametrize("board", BOARDS)
def test_real_firmware_boots_and_keeps_running(board, tmp_path):
    with run_band(board, tmp_path) as band:
        time.sleep(0.8)
        crashes = band.world.outputs("crash")
        assert crashes == [], crashes
        assert len(band.boots) == 1  # no reset loop
        assert band.world.current("power") == "active"
        assert not band.world.current("motor")  # silent at rest
    assert (tmp_path / "board.json").exists()  # "flashed" next to main.py, as the firmware expects
