"""Shared helpers for the benchmarks: percentiles, tables, and the results files.

Results are merged by benchmark name into tests/bench/results/latest.json; SUMMARY.md is rebuilt
from it after every run (the README links to it).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = HERE / "results"
LATEST = RESULTS / "latest.json"
SUMMARY = RESULTS / "SUMMARY.md"

for _p in (REPO / "tests" / "relay", REPO / "tests" / "mp", REPO / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]]
    cells += [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join(f"{c:.2f}" if isinstance(c, float) else str(c) for c in r) + " |")
    return "\n".join(out)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save(name: str, data: dict[str, Any], summary_md: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest: dict[str, Any] = json.loads(LATEST.read_text()) if LATEST.exists() else {}
    latest[name] = {"machine": machine(), **data, "summary_md": summary_md}
    LATEST.write_text(json.dumps(latest, indent=2, sort_keys=True) + "\n")
    parts = [
        "# Benchmark results",
        "",
        "Produced by `python3 dev.py bench` (tests/bench/); raw figures in `latest.json`. "
        "Each section says what was measured, where and when.",
        "",
    ]
    for key in sorted(latest):
        m = latest[key]["machine"]
        when = f"_{m['when']}, {m['cpus']} CPUs, Python {m['python']}, {m['platform']}_"
        parts += [f"## {key}", "", when, ""]
        parts += [latest[key].get("summary_md", ""), ""]
    SUMMARY.write_text("\n".join(parts))
    print(f"\nresults: {LATEST.relative_to(REPO)} ({name}), summary: {SUMMARY.relative_to(REPO)}")
