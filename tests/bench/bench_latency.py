"""Latency benchmark on loopback, one broker, no simulated radio delay.

Measured in the same run, on the same broker (Mosquitto if installed, else the embedded one):
* bare MQTT: aiomqtt QoS 1 publish -> the subscriber's receive (two clients, N messages, one at a time);
* relay: companion to companion through hugapp's Relay (sealed envelope, durable SQLite outbox,
  dedup, end-to-end ack): Relay.send() (the press is stored and handed to the relay) -> the partner
  Relay's on_message (where the router turns it into a Play for the partner band link), N hugs;
* ratio relay p99 / bare p99 (target <= 3) and relay p99 (target <= 20 ms).
Not measured here (gap): the BLE legs through virtual bands (press on the band -> motor on).
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

import aiomqtt
from common import md_table, pct, save, table
from relaykit import HOST, EmbeddedTestBroker, MosquittoTestBroker, Phone, make_circle

N = int(os.environ.get("HUG_BENCH_HUGS", "1000"))


async def bare(port: int, n: int) -> list[float]:
    out: list[float] = []
    async with (
        aiomqtt.Client(HOST, port, identifier="bench-sub") as sub,
        aiomqtt.Client(HOST, port, identifier="bench-pub") as pub,
    ):
        await sub.subscribe("bench/lat", qos=1)
        it = sub.messages.__aiter__()
        for i in range(n + 20):
            t0 = time.perf_counter()
            await pub.publish("bench/lat", str(i).encode(), qos=1)
            async with asyncio.timeout(5):
                await it.__anext__()
            if i >= 20:  # warm-up
                out.append((time.perf_counter() - t0) * 1000)
    return out


async def relay(url: str, n: int, tmp: Path) -> tuple[list[float], int]:
    a, b = Phone(tmp, "Kid Mia"), Phone(tmp, "Mum Ann")
    link = make_circle(a, b)
    got: dict[str, float] = {}
    done = asyncio.Event()
    want: list[str] = []

    async def on_msg(m: Any) -> None:
        got.setdefault(m.msg_id, time.perf_counter())
        if len(want) and m.msg_id == want[-1]:
            done.set()

    b._on_message = on_msg  # type: ignore[method-assign]
    ra = await a.start(url, poll_interval=1.0)
    await b.start(url, poll_interval=1.0)
    lat: list[float] = []
    errors = 0
    for i in range(n + 20):
        done.clear()
        t0 = time.perf_counter()
        mid = await ra.send(link, {"gesture": "tap", "taps": 1})
        want.append(mid)
        try:
            async with asyncio.timeout(5):
                while mid not in got:
                    await done.wait()
                    done.clear()
        except TimeoutError:
            errors += 1
            continue
        if i >= 20:
            lat.append((got[mid] - t0) * 1000)
    await a.stop()
    await b.stop()
    return lat, errors


async def run_all() -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hug-bench-lat-"))
    exe = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    broker = MosquittoTestBroker(exe, tmp) if exe else EmbeddedTestBroker()
    async with broker:
        b = await bare(broker.port, N)
        r, errors = await relay(broker.url, N, tmp)
    return {"broker": broker.kind, "bare_ms": b, "relay_ms": r, "errors": errors}


def main() -> dict[str, Any]:
    print(f"latency: {N} messages/hugs each, loopback, one broker")
    res = asyncio.run(asyncio.wait_for(run_all(), 600))
    rows = []
    stats: dict[str, Any] = {}
    for key, label in (
        ("bare_ms", "bare MQTT QoS1 publish->receive"),
        ("relay_ms", "relay: Relay.send -> partner on_message"),
    ):
        v = res[key]
        stats[key] = {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99), "max": max(v)}
        rows.append([label, len(v), pct(v, 50), pct(v, 99), max(v)])
    ratio50 = stats["relay_ms"]["p50"] / stats["bare_ms"]["p50"]
    ratio99 = stats["relay_ms"]["p99"] / stats["bare_ms"]["p99"]
    headers = ["path (" + res["broker"] + ")", "n", "p50 ms", "p99 ms", "max ms"]
    print(table(headers, rows))
    print(f"ratio relay/bare: p50 {ratio50:.1f}x, p99 {ratio99:.1f}x; errors {res['errors']}")
    md = (
        f"Loopback, broker: {res['broker']}, no simulated radio delay; same run, same broker.\n\n"
        + md_table(headers, rows)
        + f"\n\nRatio relay/bare: p50 **{ratio50:.1f}x**, p99 **{ratio99:.1f}x** (target p99 <= 20 ms, "
        f"ratio <= 3). Errors (no delivery within 5 s): {res['errors']}. The relay figure is the "
        "companion-to-companion leg (press stored and handed to the relay -> partner companion has it); "
        "the BLE legs to and from virtual bands are not in this figure."
    )
    data = {
        "broker": res["broker"],
        "stats": stats,
        "ratio_p50": ratio50,
        "ratio_p99": ratio99,
        "errors": res["errors"],
        "n": N,
    }
    save("latency", data, md)
    return data


if __name__ == "__main__":
    sys.exit(main() is None)
