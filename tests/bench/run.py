"""Run the benchmarks: `python3 dev.py bench [latency|scale|band|x25519|hub|class ...]` (all when none
is named).

Figures are printed and merged into tests/bench/results/latest.json + SUMMARY.md. Not part of pytest.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "app" / "core")]  # common, relaykit

NAMES = ("latency", "scale", "band", "x25519", "hub", "class")


def main(argv: list[str]) -> int:
    names = argv or list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"\n=== bench {name} ===", flush=True)
        importlib.import_module(f"bench_{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
