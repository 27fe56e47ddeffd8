"""Attack tests: fuzzed decoders (CPython and real MicroPython), replayed BLE frames against the
real firmware, brute-forcing a link code. tests/attacks goes on sys.path (fuzzcore); relaykit and the
firmware tests' virtual band come from the shared kits (tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
