"""Scale benchmark: families (two companions each, relay level: two Relays per family, one MQTT
connection per companion) ramped on Mosquitto and on the embedded broker (its own process, `hugbutton
broker`) side by side, until p99 > 100 ms or errors appear, or the time/fd budget runs out.

Each step adds families (stores in a temp folder), waits until every Relay is connected, then every
family sends one hug child -> parent at once; latency = Relay.send -> partner on_message. The load
generator (all Relays, one asyncio loop) shares the 2 cores with the broker: it is part of the figure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, md_table, pct, save, table
from relaykit import HOST, MosquittoTestBroker, Phone, make_circle, wait_port

from hugapp.core.broker import free_port

STEPS = [10, 25, 50, 100, 200, 400, 800, 1600, 3200, 5000]
BUDGET_S = float(os.environ.get("HUG_BENCH_SCALE_S", "240"))  # per broker
P99_LIMIT_MS = 100.0
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None  # stores on tmpfs: the broker is measured


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


class EmbeddedProcess:
    kind = "embedded"

    def __init__(self) -> None:
        self.port = free_port(HOST)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    async def __aenter__(self) -> EmbeddedProcess:
        exe = Path(sys.executable).parent / "hugbutton"
        args = [str(exe), "broker", "--port", str(self.port)]
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - starts at once; readiness awaited below
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await asyncio.to_thread(wait_port, self.port, 20.0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            await asyncio.to_thread(self.proc.wait, 10)


async def ramp(broker: Any, tmp: Path, fd_limit: int) -> list[dict[str, Any]]:
    families: list[tuple[Phone, Phone, str]] = []
    got: dict[str, float] = {}
    results: list[dict[str, Any]] = []
    start = time.monotonic()
    try:
        for target in STEPS:
            if 2 * target * 4 + 100 > fd_limit:  # socket + SQLite (db, wal, shm) per companion
                results.append({"families": target, "stopped": f"fd limit {fd_limit}"})
                break
            t_add = time.monotonic()
            failed = ""
            while len(families) < target:
                i = len(families)
                a, b = Phone(tmp, f"kid{i} K"), Phone(tmp, f"mum{i} M")
                link = make_circle(a, b)

                async def on_msg(m: Any, got: dict[str, float] = got) -> None:
                    got.setdefault(m.msg_id, time.perf_counter())

                b._on_message = on_msg  # type: ignore[method-assign]
                families.append((a, b, link))
                try:
                    await asyncio.gather(a.start(broker.url, poll_interval=5.0),
                                         b.start(broker.url, poll_interval=5.0))
                except (TimeoutError, OSError) as e:  # the broker refused or dropped a connection
                    failed = f"connect failed at {len(families)} families: {type(e).__name__}"
                    break
            if failed:
                print(f"  {broker.kind}: {failed}", flush=True)
                results.append({"families": target, "stopped": failed})
                break
            setup_s = time.monotonic() - t_add
            sent: dict[str, float] = {}

            async def send(a: Phone, link: str, sent: dict[str, float] = sent) -> None:
                assert a.relay is not None
                t0 = time.perf_counter()
                mid = await a.relay.send(link, {"gesture": "tap", "taps": 1})
                sent[mid] = t0

            await asyncio.gather(*(send(a, link) for a, _b, link in families))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not all(m in got for m in sent):  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # a bounded poll over thousands of handlers
            lat = [(got[m] - t0) * 1000 for m, t0 in sent.items() if m in got]
            errors = len(sent) - len(lat)
            row = {"families": target, "connections": 2 * target, "hugs": len(sent), "errors": errors,
                   "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "setup_s": setup_s}
            print(f"  {broker.kind}: {target} families: p50 {row['p50_ms']:.1f} ms, "
                  f"p99 {row['p99_ms']:.1f} ms, errors {errors}, setup {setup_s:.1f} s", flush=True)
            results.append(row)
            if errors or row["p99_ms"] > P99_LIMIT_MS:
                break
            if time.monotonic() - start > BUDGET_S:
                results.append({"families": target, "stopped": f"time budget {BUDGET_S:.0f} s"})
                break
    finally:
        await asyncio.gather(*(p.stop() for a, b, _ in families for p in (a, b)), return_exceptions=True)
        for a, b, _ in families:
            a.store.close()
            b.store.close()
    return results


def knee(rows: list[dict[str, Any]]) -> int:
    ok = [r["families"] for r in rows if "p99_ms" in r and not r["errors"] and r["p99_ms"] <= P99_LIMIT_MS]
    return max(ok) if ok else 0


async def run_all(fd_limit: int) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    exe = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    base = Path(tempfile.mkdtemp(prefix="hug-bench-scale-", dir=SHM))
    if exe:
        (base / "m").mkdir()
        mosq = MosquittoTestBroker(exe, base / "m", extra_conf="max_connections -1\n")
        async with mosq:
            out["mosquitto"] = await ramp(mosq, base / "m", fd_limit)
    (base / "e").mkdir()
    async with EmbeddedProcess() as emb:
        out["embedded"] = await ramp(emb, base / "e", fd_limit)
    return out


def main() -> dict[str, Any]:
    logging.getLogger("hugapp").setLevel(logging.ERROR)  # presence chatter between unrelated relays
    fd_limit = raise_nofile()
    print(f"scale: families ramped {STEPS}; stop at p99 > {P99_LIMIT_MS:.0f} ms, errors, {BUDGET_S:.0f} s "
          f"per broker or the fd limit ({fd_limit})")
    res = asyncio.run(run_all(fd_limit))
    rows = []
    for kind, steps in res.items():
        for r in steps:
            if "p99_ms" in r:
                rows.append([kind, r["families"], r["connections"], r["errors"], r["p50_ms"], r["p99_ms"],
                             r["setup_s"]])
            else:
                rows.append([kind, r["families"], "-", "-", "-", "-", r["stopped"]])
    headers = ["broker", "families", "connections", "errors", "p50 ms", "p99 ms", "setup s / stop"]
    print(table(headers, rows))
    knees = {kind: knee(steps) for kind, steps in res.items()}
    print("knee (largest step with p99 <= 100 ms and no errors): "
          + ", ".join(f"{k} {v} families" for k, v in knees.items()))
    md = (
        "Families of two companions (two Relays, one MQTT connection each), one hug per family per step, "
        "all at once; loopback; load generator and broker on the same 2 cores.\n\n"
        + md_table(headers, rows)
        + "\n\nKnee (largest step with p99 <= 100 ms and no errors): "
        + ", ".join(f"**{k}: {v} families**" for k, v in knees.items())
        + " (target >= 5,000 on Mosquitto)."
    )
    data = {"steps": res, "knee": knees, "p99_limit_ms": P99_LIMIT_MS, "budget_s": BUDGET_S,
            "fd_limit": fd_limit, "repo": str(REPO)}
    save("scale", data, md)
    return data


if __name__ == "__main__":
    main()
