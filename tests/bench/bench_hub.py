"""Latency through the classroom hub, against the owner's phone next to the band, in one run.

One real band process, the simulated radio (no delay), Mosquitto (else the embedded broker), the
owner's BandLink. First the band is next to the phone (the direct path), then at school (out of the
phone's range, in the hub's; the same BandLink code over the hub tunnel's bleak backend). Per path,
N times, in airspace time:

* press: the band's Event notification on the air -> the owner has stored the press (on_press);
* play: the owner calls BandLink.play -> the band's motor starts.

Each hug waits for the previous buzz to end. Taken on a loaded 2-core machine: compare the two paths
of one run, not runs with each other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import md_table, pct, save, table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scenarios"))  # hubkit

from hubkit import TAP_MS, School, school
from relaykit import EmbeddedTestBroker, MosquittoTestBroker, TestBroker

from hugapp.core.bandlink import BandLink
from hugproto import patterns
from hugproto.gatt import EVENT_CHAR_UUID

N = int(os.environ.get("HUG_BENCH_HUB_N", "20"))
BUZZ_OVER_S = 1.6  # the longest pattern has ended


async def measure(s: School, link: BandLink, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"press_ms": [], "play_ms": []}
    await asyncio.wait_for(link.connected.wait(), 60)
    await asyncio.sleep(1.0)
    offset_ms = await s.control.now() - time.time() * 1000  # airspace ms = this clock + offset
    for _ in range(n):
        before = len(s.press_times)
        _, released = await s.control.hold(s.band.address, TAP_MS)
        on_air = await s.control.wait_output(
            s.band.address, "notify", lambda v: v == EVENT_CHAR_UUID, since_ms=released, timeout=10
        )
        await s.until(lambda: len(s.press_times) > before, 20)  # noqa: B023
        out["press_ms"].append(s.press_times[before] * 1000 + offset_ms - on_air.t_ms)
        await asyncio.sleep(0.5)
        asked = time.time() * 1000 + offset_ms
        await link.play(patterns.HUG, 1, 255, 1)
        motor = await s.control.wait_output(
            s.band.address, "motor", lambda v: float(v) > 0, since_ms=asked, timeout=10
        )
        out["play_ms"].append(motor.t_ms - asked)
        await asyncio.sleep(BUZZ_OVER_S)
    return out


async def run_all(n: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hug-bench-hub-"))
    exe = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    broker: TestBroker = MosquittoTestBroker(exe, tmp) if exe else EmbeddedTestBroker()
    async with school(tmp, broker) as s:
        await s.pair()
        direct_link = s.link(s.phone)
        direct = await measure(s, direct_link, n)
        await s.stop_link(direct_link)
        await s.leave()
        s.start_hub()
        await s.enrol()
        await s.open_tunnel()
        via_hub = await measure(s, s.link(), n)
    return {"broker": broker.kind, "n": n, "direct": direct, "via_hub": via_hub}


def main() -> None:
    data = asyncio.run(run_all(N))
    headers = ["path", "what", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    rows: list[list[Any]] = []
    for path in ("direct", "via_hub"):
        for what, key in (("press on air -> owner stored", "press_ms"), ("play -> motor", "play_ms")):
            v = data[path][key]
            rows.append([path, what, pct(v, 50), pct(v, 90), pct(v, 99), max(v)])
    print(table(headers, rows))
    summary = (
        f"Latency through the classroom hub vs the phone next to the band ({data['n']} hugs each, "
        f"{data['broker']} broker, no radio delay; a loaded 2-core machine).\n\n" + md_table(headers, rows)
    )
    save("hub", data, summary)


if __name__ == "__main__":
    main()
