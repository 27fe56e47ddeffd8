"""Running a UI scenario (tests/app/ui/driver.py, or hubdriver.py for the hub's screen) in its own
process on a given X display, and checking the screenshots it saved."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def shots_dir(tmp_path: Path) -> Path:
    """Where screenshots go: HUG_SCREENSHOTS=DIR (the README's pictures), else the test's tmp folder."""
    chosen = os.environ.get("HUG_SCREENSHOTS")
    return Path(chosen) if chosen else tmp_path / "shots"


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 200, (path, width)
    assert height >= 300, (path, height)
    assert len(data) > 5000, f"{path} looks blank"


def run_scenario(
    name: str, display: str, tmp: Path, shots: Path, timeout: float = 75.0, driver: str = "driver.py"
) -> str:
    """Run one scenario of ``driver``; fail with its output unless it passed."""
    env = dict(os.environ, DISPLAY=display, PYTHONUNBUFFERED="1", KIVY_NO_ARGS="1", KIVY_LOG_MODE="PYTHON")
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / driver),
            name,
            "--tmp",
            str(tmp),
            "--shots",
            str(shots),
            "--timeout",
            str(timeout),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "SCENARIO PASSED" in proc.stdout, out[-6000:]
    return out
