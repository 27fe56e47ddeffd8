"""Attack tests: fuzzed decoders (CPython and real MicroPython), replayed BLE frames against the
real firmware, brute-forcing a link code. tests/attacks, tests/relay (relaykit) and tests/ (e2e) go
on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent / "relay", HERE.parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
