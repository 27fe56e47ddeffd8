"""`hugbutton demo --class 20 --hugs N --json`: the whole stack as a user runs it, reporting exactly once.

Mia (no phone) is at school: her presses reach Mum through the class hub, which serves 19 classmates'
bands too (19 other families, each child's band owned by one parent's phone at work); then the class
taps within 10 s ("everyone, send a hug home!") and each press reaches its family once."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_with_a_class_of_twenty_reports_every_hug_once() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hugapp.cli", "demo", "--class", "20", "--hugs", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
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
    assert figures["via_hub"] == 3, "Mia is at school: every press came through the class hub"
    burst = figures["class"]
    assert burst["bands"] == 20
    assert (burst["sent"], burst["received"], burst["lost"], burst["duplicates"]) == (19, 19, 0, 0)
    assert 0 < burst["last_s"] < 120
    assert figures["band_runtime"] == "micropython"
    assert 0 < figures["band_heap_peak_bytes"] < 200 * 1024, "the bands ran within the C3's heap cap"


def test_demo_refuses_a_class_it_cannot_hold() -> None:
    for bad in ("0", "41"):
        proc = subprocess.run(
            [sys.executable, "-m", "hugapp.cli", "demo", "--class", bad, "--hugs", "1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        assert "--class takes 1 to 40 children" in proc.stderr
