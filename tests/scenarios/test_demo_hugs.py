"""`hugbutton demo --hugs N --json`: the whole stack as a user runs it, reporting exactly once."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_hugs_json_reports_every_hug_once() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hugapp.cli", "demo", "--hugs", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["sent"] == 3
    assert figures["received"] == 3
    assert figures["felt"] == 3
    assert figures["lost"] == 0
    assert figures["duplicates"] == 0
    assert figures["buzzes"] == 3, "three hugs in a minute are not yet a storm"
    assert figures["latency_ms"]["samples"] == 3
    assert 0 < figures["latency_ms"]["p50"] <= figures["latency_ms"]["p99"]
    assert figures["child_phones"] == 0, "Mia has no phone: her band is served by Mum's phone and the gateway"
    assert figures["band_runtime"] == "micropython"
    assert 0 < figures["band_heap_peak_bytes"] < 200 * 1024, "the bands ran within the C3's heap cap"
