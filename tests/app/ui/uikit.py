"""Running a UI scenario (tests/app/ui/driver.py) in its own process on a given X display."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_scenario(name: str, display: str, tmp: Path, shots: Path, timeout: float = 75.0) -> str:
    """Run one driver scenario; fail with its output unless it passed."""
    env = dict(os.environ, DISPLAY=display, PYTHONUNBUFFERED="1", KIVY_NO_ARGS="1", KIVY_LOG_MODE="PYTHON")
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "driver.py"),
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
