"""The board modules of virtual bands (sim/hugsim/band/mp) checked on the real MicroPython unix port:
tests/sim/band/mpport_checks.py, one pytest test per case."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests" / "mp"))

from testkit import parse_case_output  # noqa: E402

from hugsim.band.mpband import MP_DIR, micropython_command  # noqa: E402

try:
    micropython_command()
except RuntimeError:
    pytest.skip("no MicroPython unix port on this platform", allow_module_level=True)


def _names() -> list[str]:
    text = (HERE / "mpport_checks.py").read_text()
    return sorted(line[4:].split("(")[0] for line in text.splitlines() if line.startswith("def case_"))


@cache
def _run() -> dict[str, str | None]:
    code = (
        "import sys\n"
        f"sys.path[:] = [{str(MP_DIR)!r}, '.frozen', {str(REPO / 'tests' / 'mp')!r}, {str(HERE)!r}]\n"
        "import cases, mpport_checks\n"
        "cases.main(mpport_checks)\n"
    )
    proc = subprocess.run(
        [micropython_command(), "-X", "heapsize=512k", "-c", code], capture_output=True, text=True, timeout=60
    )
    results, summary = parse_case_output(proc.stdout)
    assert summary is not None, proc.stdout + proc.stderr
    return results


@pytest.mark.parametrize("case", _names())
def test_board_module(case: str) -> None:
    results = _run()
    assert case in results, f"{case} did not run"
    assert results[case] is None, results[case]
