"""A stranger with a broker account floods one companion's inbox: 50,000 envelopes of 16 KB (the
broker's size limit in deploy/mosquitto.conf), while the family's real hugs keep coming. The victim
(a Companion in its own process, so its memory can be read) must stay within +50 MB, keep taking real
hugs with p99 <= 5 s, and tell the parent "junk is arriving" once, not per message. On Mosquitto
with deploy/'s limits and on the embedded broker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
from relaykit import HOST, Phone, TestBroker, make_circle, run

from hugapp.core import relaystore as rs
from hugapp.core.envelope import inbox_topic
from hugapp.core.hugs import GESTURE_TAP, Hug

FLOOD = int(os.environ.get("HUG_FLOOD", "50000"))
JUNK_BYTES = 16_000
HUGS = 40
HERE = Path(__file__).resolve().parent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_an_inbox_flood_costs_little_and_hugs_keep_arriving(broker: TestBroker, tmp_path: Path) -> None:
    mum, kid = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
    link = make_circle(mum, kid)
    circle = rs.link(kid.store, link)
    assert circle is not None
    target = inbox_topic(circle.key, mum.member_id, mum.me.mailbox)  # a former member knows it
    mum.store.close()

    async def main() -> dict[str, Any]:
        async with broker:
            victim = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "flood_victim.py"),
                str(mum.db_path),
                broker.url,
                stdout=asyncio.subprocess.PIPE,
                env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
            )
            assert victim.stdout is not None
            got: dict[int, float] = {}
            rss: list[int] = []
            junk_notices: list[str] = []
            ready, all_got = asyncio.Event(), asyncio.Event()
            base = [0]

            async def read() -> None:
                assert victim.stdout is not None
                async for line in victim.stdout:
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        print("victim:", line.decode(errors="replace").rstrip())
                        continue
                    if "ready" in msg:
                        base[0] = msg["ready"]
                        ready.set()
                    elif "got" in msg:
                        got[int(str(msg["got"])[1:])] = float(msg["t"])
                        if len(got) == HUGS:
                            all_got.set()
                    elif "rss" in msg:
                        rss.append(int(msg["rss"]))
                    elif "junk" in msg:
                        junk_notices.append(str(msg["junk"]))

            reader = asyncio.create_task(read())
            try:
                async with asyncio.timeout(20):
                    await ready.wait()
                sender = await kid.start(broker.url)
                sent_at: dict[int, float] = {}

                async def hugs() -> None:
                    for n in range(HUGS):
                        sent_at[n] = time.time()
                        hug = Hug(f"h{n}", kid.member_id, GESTURE_TAP, 1, 0, time.time())
                        await sender.send(link, hug.to_payload())
                        await asyncio.sleep(0.25)

                async def flood() -> float:
                    t0 = time.monotonic()
                    junk = os.urandom(JUNK_BYTES)
                    async with aiomqtt.Client(HOST, broker.port, identifier="stranger") as eve:
                        for _ in range(FLOOD):
                            await eve.publish(target, junk, qos=1)
                    return time.monotonic() - t0

                hugging = asyncio.create_task(hugs())
                flood_s = await flood()
                await hugging
                async with asyncio.timeout(30):
                    await all_got.wait()
                await kid.stop()
            finally:
                victim.terminate()
                await victim.wait()
                reader.cancel()
            latencies = [got[n] - sent_at[n] for n in range(HUGS)]
            return {
                "flood_s": flood_s,
                "base_kb": base[0],
                "peak_kb": max(rss),
                "p50": pct(latencies, 0.5),
                "p99": pct(latencies, 0.99),
                "junk_notices": junk_notices,
                "got": sorted(got),
            }

    r = run(main(), timeout=240)
    grown_mb = (r["peak_kb"] - r["base_kb"]) / 1024
    print(
        f"{broker.kind}: {FLOOD} x {JUNK_BYTES} B junk in {r['flood_s']:.1f} s; victim memory "
        f"{r['base_kb'] / 1024:.0f} MB -> peak {r['peak_kb'] / 1024:.0f} MB (+{grown_mb:.1f} MB); "
        f"{HUGS} real hugs, p50 {r['p50'] * 1000:.0f} ms, p99 {r['p99'] * 1000:.0f} ms; "
        f"junk notices {len(r['junk_notices'])}"
    )
    assert r["got"] == list(range(HUGS))  # every real hug arrived
    assert grown_mb <= 50
    assert r["p99"] <= 5.0
    assert len(r["junk_notices"]) == 1  # the parent is told once, not per message
