"""The scripted day under real MicroPython, step by step, with its heap high-water figure.

tests/firmware/day_mp.mjs runs each step of bandday.Day in its own top-level call, because the
WebAssembly port only collects garbage back at the JavaScript top level. The budget (40 KB) is for
what the band allocates at run time: the live heap above the figure right after importing hugproto
and hugband (their bytecode, compiled from .py here; frozen into flash on a production band).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from testkit import micropython_unavailable

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "firmware" / "day_mp.mjs"
BUDGET = 40 * 1024
_LINE = re.compile(r"DAY OK .* heap_high_water=(\d+) bytes \((\d+) above the (\d+) bytes after imports\)")


@pytest.mark.micropython
@pytest.mark.parametrize("board", ["xiao_esp32c3", "xiao_esp32s3"])
def test_day_under_micropython_fits_the_heap_budget(board: str) -> None:
    why = micropython_unavailable()
    if why is not None:
        pytest.skip(why)
    proc = subprocess.run(
        ["node", str(DRIVER), board], capture_output=True, text=True, timeout=300, cwd=REPO, check=False
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    m = _LINE.search(proc.stdout)
    assert m is not None, proc.stdout
    high, above, base = (int(g) for g in m.groups())
    print(f"\n{board}: {m.group(0)}")
    assert high == above + base
    assert 0 < above <= BUDGET, f"run-time heap {above} bytes exceeds the {BUDGET} byte budget"
