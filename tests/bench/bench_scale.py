"""Scale benchmark: families of two companions ramped on Mosquitto, on a three-node NATS cluster (the
two members of a family on different nodes; broker CPU = the three nodes together) and on the
embedded broker (its own process, `hugbutton broker`) side by side, under a steady offered load, until
p99 > 100 ms or errors appear (or the fd limit, the ephemeral ports or the time budget run out).
Knee = largest step passing.

Load model (HUG_BENCH_SCALE_* environment variables change the main figures, see the constants):
* a companion is the product's Relay (product defaults: keepalive 30 s, reconnect from 1 s) with its
  own Store (SQLite in WAL mode, on tmpfs) and one MQTT connection; a family is two companions linked
  in one circle (what linking stores). Hugs are the product's sealed envelopes through the product's
  Relay (durable outbox, dedup, end-to-end ack).
* the load generator is split across WORKERS processes (spawned), each hosting every WORKERS-th family
  (both companions of a family live in the same worker, so send and receive share one clock). Four,
  not two, because each companion holds 4 fds (socket, SQLite db, -wal, -shm) and a process may not
  raise its fd limit above the hard limit (20,000 on the reference machine).
* offered load: each family sends one hug every PERIOD_S (30 s: a very affectionate family) with a
  random phase and a random direction (either member), for a fixed WINDOW_S per step; the hugs of a
  step are therefore spread evenly over the window, not one burst.
* latency = Relay.send -> the partner Relay's on_message. Errors = hugs not at the partner within
  TIMEOUT_S, sends refused, connections dropped (reconnects) or down during the window, and
  companions not connected within CONNECT_TIMEOUT_S when the step added them (then the step has
  failed: the rest of its companions are not started and there is no window).
* set-up: each step first adds its new families (stores, then connections, CONNECT_CONCURRENCY in
  flight per worker); the time until all are connected (connect, subscribe, retained presence) is
  reported, with the per-connection p50/p99.
* probe: a bare MQTT QoS 1 round trip every PROBE_EVERY_S during the window, from a process of its own
  that does nothing else: the broker's own latency under the step's load, next to the hugs' latency
  (which also contains the time the busy load generator takes to run both Relays).
* CPU of the broker, of the load generator (workers + probe) and of everything else on the machine
  over each window (and over a failed set-up), from /proc, so the report says who ran out of CPU.

Lighter than a phone in one respect, on purpose: the relay's idle outbox poll (product default 1 s,
a local SQLite query that only finds retries due; it sends nothing to the broker) runs every POLL_S
instead, and each worker freezes its heap after set-up (gc.freeze) so that Python's full collections
over thousands of companions in one process do not show up as broker latency. Neither changes what
the broker sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing as mp
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiomqtt
from common import REPO, md_table, pct, save, table
from relaykit import HOST, MosquittoTestBroker, Phone, make_circle, wait_port

from hugapp.core.broker import free_port
from hugapp.core.envelope import RelayError
from hugapp.core.relay import NO_DELAY, Incoming
from hugapp.dev.cluster import NatsCluster, find_nats_server

STEPS = [int(s) for s in os.environ.get("HUG_BENCH_SCALE_STEPS", "").split(",") if s] or [
    100,
    250,
    500,
    1000,
    2000,
    3000,
    5000,
    7500,
    9500,
    10000,
]
ALL_BROKERS = ["mosquitto", "cluster", "embedded"]
BROKERS = os.environ.get("HUG_BENCH_SCALE_BROKERS", ",".join(ALL_BROKERS)).split(",")
WORKERS = int(os.environ.get("HUG_BENCH_SCALE_WORKERS", "4"))
PERIOD_S = float(os.environ.get("HUG_BENCH_SCALE_PERIOD", "30"))  # one hug per family every PERIOD_S
WINDOW_S = float(os.environ.get("HUG_BENCH_SCALE_WINDOW", "30"))  # measured per step
BUDGET_S = float(os.environ.get("HUG_BENCH_SCALE_S", "480"))  # per broker, set-up included
P99_LIMIT_MS = 100.0
TARGET = 5000  # families on Mosquitto (issue)
TIMEOUT_S = 5.0  # a hug not at the partner within this is lost
CONNECT_TIMEOUT_S = 30.0
CONNECT_CONCURRENCY = int(os.environ.get("HUG_BENCH_SCALE_CONNECTING", "8"))  # in flight per worker
POLL_S = 30.0  # relay outbox poll (local SQLite only); sends wake the outbox at once
FDS_PER_COMPANION = 4  # socket + SQLite db, -wal, -shm
PROBE_EVERY_S = 0.1  # bare MQTT round trips beside the load (probe_serve)
SETTLE_S = 2.0  # after set-up, before the window
HUG = {"gesture": "tap", "taps": 1}
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None  # stores on tmpfs: the broker is measured
TICK = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


def ephemeral_ports() -> int:
    try:
        lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 28_000
    return hi - lo + 1


# ------------------------------------------------------------------------------ worker (load generator)


class Family:
    def __init__(self, workdir: Path, i: int, on_message: Any) -> None:
        self.index = i
        self.a, self.b = Phone(workdir, f"kid{i} K"), Phone(workdir, f"mum{i} M")
        for p in (self.a, self.b):
            p._on_message = on_message  # type: ignore[method-assign]
        self.link = make_circle(self.a, self.b)


class Worker:
    """One load-generator process: its share of the families, driven through a pipe by the ramp."""

    def __init__(self, conn: Connection, wid: int, nworkers: int, workdir: Path, url: str) -> None:
        self.conn = conn
        self.wid = wid
        self.nworkers = nworkers
        self.workdir = workdir
        self.url = url
        self.families: list[Family] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.sent: dict[str, float] = {}
        self.got: dict[str, float] = {}
        self.sending = False
        self.all_in = asyncio.Event()
        self.stopping = False

    async def on_message(self, m: Incoming) -> None:
        if m.msg_id in self.sent and m.msg_id not in self.got:
            self.got[m.msg_id] = time.perf_counter()
            if not self.sending and len(self.got) == len(self.sent):
                self.all_in.set()

    def phones(self) -> list[Phone]:
        return [p for f in self.families for p in (f.a, f.b)]

    def url_of(self, family: Family, member: int) -> str:
        """On a cluster (several URLs) the two members of a family start on different nodes (each
        hug crosses a route), and the families spread over the nodes."""
        urls = self.url.split(",")
        k = (family.index + member) % len(urls)
        return ",".join(urls[k:] + urls[:k])

    async def grow(self, count: int) -> dict[str, Any]:
        t = time.monotonic()
        new: list[Family] = []
        while len(self.families) < count:
            fam = Family(self.workdir, self.wid + self.nworkers * len(self.families), self.on_message)
            self.families.append(fam)
            new.append(fam)
            if len(new) % 20 == 0:
                await asyncio.sleep(0)  # the companions already up keep being served
        store_s = time.monotonic() - t
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
        timed_out: list[Phone] = []

        async def up(f: Family, member: int) -> float | None:
            p = (f.a, f.b)[member]
            async with sem:
                if timed_out:  # the step has failed already: do not pile more on the broker
                    return None
                t0 = time.monotonic()
                relay = p.make_relay(self.url_of(f, member), poll_interval=POLL_S, reconnect_min=1.0)
                self.tasks.append(asyncio.create_task(relay.run()))
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT_S):
                        await relay.connected.wait()
                except TimeoutError:
                    timed_out.append(p)
                    return None
                return time.monotonic() - t0

        t = time.monotonic()
        res = await asyncio.gather(*(up(f, m) for f in new for m in (0, 1)))
        connect_s = time.monotonic() - t
        each = [r * 1000 for r in res if r is not None]
        gc.collect()
        gc.freeze()  # see the module docstring
        return {
            "store_s": store_s,
            "connect_s": connect_s,
            "new": len(res),
            "connect_timeout": len(timed_out),
            "not_attempted": len(res) - len(each) - len(timed_out),
            "conn_ms": each,
        }

    async def load(self, t0: float, window: float, period: float, seed: int) -> dict[str, Any]:
        rng = random.Random(seed)
        plan: list[tuple[float, int, bool]] = []
        for k in range(len(self.families)):
            at = rng.uniform(0, period)
            while at < window:
                plan.append((t0 + at, k, rng.random() < 0.5))
                at += period
        plan.sort()
        phones = self.phones()
        connects0 = sum(p.relay.stats.connects for p in phones if p.relay is not None)
        self.sent, self.got = {}, {}
        self.all_in.clear()
        self.sending = True
        lag: list[float] = []
        refused = 0
        for when, k, flip in plan:
            delay = when - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lag.append((time.monotonic() - when) * 1000)
            fam = self.families[k]
            src = fam.b if flip else fam.a
            assert src.relay is not None
            t_send = time.perf_counter()
            try:
                mid = await src.relay.send(fam.link, HUG)
            except RelayError:
                refused += 1
                continue
            self.sent[mid] = t_send
        await asyncio.sleep(max(0.0, t0 + window - time.monotonic()))  # the window is what CPU covers
        self.sending = False
        if len(self.got) < len(self.sent):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TIMEOUT_S):
                    await self.all_in.wait()
        lat = [(self.got[m] - t) * 1000 for m, t in self.sent.items() if m in self.got]
        connects1 = sum(p.relay.stats.connects for p in phones if p.relay is not None)
        return {
            "lat_ms": lat,
            "hugs": len(self.sent),
            "lost": len(self.sent) - len(lat),
            "late": sum(v > TIMEOUT_S * 1000 for v in lat),
            "send_refused": refused,
            "reconnects": connects1 - connects0,
            "down": sum(1 for p in phones if p.relay is None or not p.relay.connected.is_set()),
            "lag_p99_ms": pct(lag, 99),
            "rss_mb": rss_mb(),
        }

    async def stop(self) -> None:
        self.stopping = True
        for t in self.tasks:
            t.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.gather(*self.tasks, return_exceptions=True)
        for p in self.phones():
            p.store.close()

    def on_loop_error(self, loop: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        """Quiet the loop about what the figures already count: connections given up on (aiomqtt's
        futures nobody awaits) and, at teardown, callbacks for sockets already closed."""
        if self.stopping or isinstance(ctx.get("exception"), aiomqtt.MqttError):
            return
        loop.default_exception_handler(ctx)

    async def serve(self) -> None:
        asyncio.get_running_loop().set_exception_handler(self.on_loop_error)
        try:
            while True:
                try:
                    cmd, arg = await asyncio.to_thread(self.conn.recv)
                except EOFError:
                    return
                if cmd == "grow":
                    self.conn.send(await self.grow(arg))
                elif cmd == "load":
                    self.conn.send(await self.load(*arg))
                elif cmd == "ping":
                    self.conn.send({"pid": os.getpid()})
                else:
                    return
        finally:
            await self.stop()
            with contextlib.suppress(OSError):
                self.conn.send({"stopped": True})


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_main(conn: Connection, wid: int, nworkers: int, workdir: str, url: str) -> None:
    logging.getLogger("hugapp").setLevel(logging.ERROR)  # presence chatter between unrelated relays
    raise_nofile()
    Path(workdir).mkdir(parents=True, exist_ok=True)
    asyncio.run(Worker(conn, wid, nworkers, Path(workdir), url).serve())


async def probe_serve(conn: Connection, port: int) -> None:
    """A bare MQTT round trip beside the load, in a process of its own that does nothing else: QoS 1
    publish -> the subscriber's receive, one at a time every PROBE_EVERY_S. The broker's own latency
    under the step's load, as opposed to what the busy load generator adds to the hugs' latency."""
    nd = {"socket_options": NO_DELAY}
    async with (
        aiomqtt.Client(HOST, port, identifier="scale-probe-sub", **nd) as sub,
        aiomqtt.Client(HOST, port, identifier="scale-probe-pub", **nd) as pub,
    ):
        await sub.subscribe("bench/probe", qos=1)
        it = sub.messages.__aiter__()
        while True:
            try:
                cmd, arg = await asyncio.to_thread(conn.recv)
            except EOFError:
                return
            if cmd != "probe":
                conn.send({})
                return
            t0, window = arg
            await asyncio.sleep(max(0.0, t0 - time.monotonic()))
            lat: list[float] = []
            lost = 0
            while time.monotonic() < t0 + window:
                want = str(len(lat) + lost).encode()
                t = time.perf_counter()
                try:
                    await pub.publish("bench/probe", want, qos=1)
                    async with asyncio.timeout(TIMEOUT_S):
                        while (await it.__anext__()).payload != want:
                            pass  # a late one from before
                    lat.append((time.perf_counter() - t) * 1000)
                except (TimeoutError, aiomqtt.MqttError):  # an overloaded broker: counted, not fatal
                    lost += 1
                await asyncio.sleep(PROBE_EVERY_S)
            conn.send({"lat_ms": lat, "lost": lost})


def probe_main(conn: Connection, port: int) -> None:
    asyncio.run(probe_serve(conn, port))


class Pool:
    def __init__(self, n: int, workdir: Path, url: str, port: int) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for w in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main, args=(child, w, n, str(workdir / f"w{w}"), url), name=f"scale-w{w}"
            )
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        self.probe, child = ctx.Pipe()
        self.probe_proc = ctx.Process(target=probe_main, args=(child, port), name="scale-probe")
        self.probe_proc.start()
        child.close()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in (*self.procs, self.probe_proc)]

    def ask(self, msgs: list[tuple[str, Any]], timeout: float) -> list[dict[str, Any]]:
        for c, m in zip(self.conns, msgs, strict=True):
            c.send(m)
        deadline = time.monotonic() + timeout
        out = []
        for c in self.conns:
            if not c.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("a load-generator worker did not answer")
            out.append(c.recv())
        return out

    def close(self) -> None:
        for c in (*self.conns, self.probe):
            with contextlib.suppress(OSError):
                c.send(("stop", None))
        deadline = time.monotonic() + 45
        for c in self.conns:
            with contextlib.suppress(OSError, EOFError):
                if c.poll(max(0.0, deadline - time.monotonic())):
                    c.recv()
        for p in (*self.procs, self.probe_proc):
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)


# ------------------------------------------------------------------------------ brokers and CPU


class BrokerProcess:
    def __init__(self, kind: str, workdir: Path, mosquitto: str | None = None) -> None:
        self.kind = kind
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "broker.log"
        self.cluster: NatsCluster | None = None
        if kind == "cluster":  # three nats-server nodes (JetStream R3, MQTT on each)
            self.cluster = NatsCluster(workdir / "nats", 3)
            self.port = self.cluster.nodes[0].mqtt_port
            self.args = []
        elif kind == "mosquitto":
            assert mosquitto is not None
            m = MosquittoTestBroker(mosquitto, workdir, extra_conf="max_connections -1\n")
            self.port = m.port
            self.args = [mosquitto, "-c", str(m.config())]
        else:
            self.port = free_port(HOST)
            self.args = [str(Path(sys.executable).parent / "hugbutton"), "broker", "--port", str(self.port)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.cluster.url if self.cluster else f"mqtt://{HOST}:{self.port}"

    @property
    def pids(self) -> list[int]:
        if self.cluster is not None:
            return [n.proc.pid for n in self.cluster.nodes if n.proc is not None]
        return [self.proc.pid] if self.proc is not None else []

    def __enter__(self) -> BrokerProcess:
        if self.cluster is not None:
            asyncio.run(self.cluster.start())
            return self
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log)
        wait_port(self.port, 20.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cluster is not None:
            asyncio.run(self.cluster.stop())
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy_s() -> float:
    """CPU seconds spent busy by the whole machine so far, all CPUs (/proc/stat)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(v) - v[3] - v[4]) / TICK


class CpuMeter:
    def __init__(self, brokers: list[int], workers: list[int]) -> None:
        self.brokers, self.workers = brokers, workers  # a cluster: every node's process

    def snap(self) -> tuple[float, float, float, float]:
        return (
            time.monotonic(),
            sum(cpu_s(p) for p in self.brokers),
            sum(cpu_s(p) for p in self.workers),
            machine_busy_s(),
        )

    @staticmethod
    def percent(a: tuple[float, ...], b: tuple[float, ...]) -> dict[str, float]:
        wall = b[0] - a[0]
        broker, workers, machine = ((b[i] - a[i]) / wall * 100 for i in (1, 2, 3))
        others = machine - broker - workers
        return {"broker": broker, "workers": workers, "machine": machine, "others": others}


# ------------------------------------------------------------------------------ the ramp


def share(total: int, w: int, n: int) -> int:
    """How many of `total` families worker w hosts (families w, w + n, w + 2n, ...)."""
    return len(range(w, total, n))


def set_up(pool: Pool, meter: CpuMeter, target: int) -> dict[str, Any]:
    """Add the step's new families in every worker and connect them; set-up figures of the step."""
    c0 = meter.snap()
    grown = pool.ask([("grow", share(target, w, WORKERS)) for w in range(WORKERS)], 900)
    c1 = meter.snap()
    new = sum(g["new"] for g in grown)
    connect_s = max(g["connect_s"] for g in grown)
    conn_ms = [v for g in grown for v in g["conn_ms"]]
    return {
        "new_connections": new,
        "connect_s": connect_s,
        "connect_per_s": new / connect_s if connect_s > 0 else float("nan"),
        "conn_p50_ms": pct(conn_ms, 50),
        "conn_p99_ms": pct(conn_ms, 99),
        "store_s": max(g["store_s"] for g in grown),
        "cpu_setup_pct": CpuMeter.percent(c0, c1),
        "setup_errors": {
            k: n for k in ("connect_timeout", "not_attempted") if (n := sum(g[k] for g in grown))
        },
    }


def offer_load(pool: Pool, meter: CpuMeter) -> dict[str, Any]:
    """One measured window of steady hugs in every worker; latency, errors and CPU of the step."""
    seed = random.randrange(1 << 30)
    t0 = time.monotonic() + 0.5
    c0 = meter.snap()
    pool.probe.send(("probe", (t0, WINDOW_S)))
    loaded = pool.ask(
        [("load", (t0, WINDOW_S, PERIOD_S, seed + w)) for w in range(WORKERS)], WINDOW_S + TIMEOUT_S + 120
    )
    c1 = meter.snap()
    if not pool.probe.poll(max(0.0, t0 + WINDOW_S - time.monotonic()) + 2 * TIMEOUT_S):
        raise TimeoutError("the probe did not answer")
    probe = pool.probe.recv()
    lat = [v for r in loaded for v in r["lat_ms"]]
    kinds = ("lost", "late", "send_refused", "reconnects", "down")
    return {
        "probe_p50_ms": pct(probe["lat_ms"], 50),
        "probe_p99_ms": pct(probe["lat_ms"], 99),
        "probe_n": len(probe["lat_ms"]),
        "probe_lost": probe["lost"],
        "hugs": sum(r["hugs"] for r in loaded),
        "window_errors": {k: n for k in kinds if (n := sum(r[k] for r in loaded))},
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "max_ms": max(lat) if lat else float("nan"),
        "cpu_window_pct": CpuMeter.percent(c0, c1),
        "gen_lag_p99_ms": max(r["lag_p99_ms"] for r in loaded),
        "worker_rss_mb": sum(r["rss_mb"] for r in loaded),
    }


def say_step(kind: str, row: dict[str, Any], elapsed: float) -> None:
    cs = row["cpu_setup_pct"]
    setup = (
        f"set-up {row['new_connections']} conns in {row['connect_s']:.1f} s (p50 {row['conn_p50_ms']:.0f}, "
        f"p99 {row['conn_p99_ms']:.0f} ms each; CPU broker {cs['broker']:.0f}% gen {cs['workers']:.0f}%)"
    )
    errors = f"errors {row['errors']}" + (f" {row['error_kinds']}" if row["errors"] else "")
    if "hugs" not in row:
        print(f"  {kind}: {row['families']} families: {errors}; {setup}; no window", flush=True)
        return
    cw = row["cpu_window_pct"]
    print(
        f"  {kind}: {row['families']} families, {row['hugs']} hugs in {WINDOW_S:.0f} s: "
        f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, max {row['max_ms']:.0f} ms, {errors}; "
        f"bare MQTT probe p50 {row['probe_p50_ms']:.2f}, p99 {row['probe_p99_ms']:.2f} ms; "
        f"{setup}; window CPU broker {cw['broker']:.0f}% gen {cw['workers']:.0f}% "
        f"other {cw['others']:.0f}% (of {100 * (os.cpu_count() or 1)}%), generator lag p99 "
        f"{row['gen_lag_p99_ms']:.0f} ms; elapsed {elapsed:.0f} s",
        flush=True,
    )


def why_not(target: int, have: int, cost: float, fd_limit: int, elapsed: float) -> str:
    """Why the step of `target` families cannot run ("" if it can); cost: set-up s per connection."""
    per_worker = 2 * share(target, 0, WORKERS)
    if max(2 * target, FDS_PER_COMPANION * per_worker) + 100 > fd_limit:
        return f"fd limit {fd_limit}: the broker needs one per connection"
    if 2 * target + 1000 > ephemeral_ports():
        return f"ephemeral ports ({ephemeral_ports()})"
    # set-up per connection assumed to grow with the connections already up (amqtt's does)
    growth = target / have if have else 1.0
    predicted = cost * growth * 2 * (target - have) + SETTLE_S + WINDOW_S + TIMEOUT_S
    if elapsed + predicted > BUDGET_S:
        return f"time budget {BUDGET_S:.0f} s"
    return ""


def ramp(kind: str, base: Path, fd_limit: int, mosquitto: str | None) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    start = time.monotonic()
    cost = 0.005  # set-up wall seconds per new connection, measured by each step
    with BrokerProcess(kind, base / kind, mosquitto) as broker:
        pool = Pool(WORKERS, base / kind, broker.url, broker.port)
        meter = CpuMeter(broker.pids, pool.pids)
        have = 0
        target = STEPS[0]
        try:
            pool.ask([("ping", None)] * WORKERS, 120)  # workers imported: not in step 1's set-up
            for target in STEPS:
                stop = why_not(target, have, cost, fd_limit, time.monotonic() - start)
                if stop:
                    print(f"  {kind}: {target} families: not run ({stop})", flush=True)
                    results.append({"families": target, "stopped": stop})
                    break
                row: dict[str, Any] = {"families": target, "connections": 2 * target}
                row.update(set_up(pool, meter, target))
                cost = (row["connect_s"] + row["store_s"]) / max(1, row["new_connections"])
                have = target
                if not row["setup_errors"]:
                    time.sleep(SETTLE_S)
                    row.update(offer_load(pool, meter))
                row["error_kinds"] = row["setup_errors"] | row.get("window_errors", {})
                row["errors"] = sum(n for k, n in row["error_kinds"].items() if k != "not_attempted")
                results.append(row)
                say_step(kind, row, time.monotonic() - start)
                if not passed(row):
                    break
        except (TimeoutError, EOFError, OSError) as e:
            print(f"  {kind}: load generator failed: {type(e).__name__}: {e}", flush=True)
            results.append({"families": target, "stopped": f"load generator: {type(e).__name__}"})
        finally:
            t = time.monotonic()
            pool.close()
            print(f"  {kind}: teardown {time.monotonic() - t:.0f} s", flush=True)
    return results


def passed(r: dict[str, Any]) -> bool:
    return "hugs" in r and not r["errors"] and r["p99_ms"] <= P99_LIMIT_MS


def knee(rows: list[dict[str, Any]]) -> int:
    ok = [r["families"] for r in rows if passed(r)]
    return max(ok) if ok else 0


def knee_text(rows: list[dict[str, Any]]) -> str:
    k = knee(rows)
    failed = [r for r in rows if "errors" in r and not passed(r)]
    if failed:
        return f"{k} families"
    stop = next((r["stopped"] for r in rows if "stopped" in r), "end of the ramp")
    return f">= {k} families (no failing step; ramp stopped by {stop})"


HEADERS = [
    "broker",
    "families",
    "hugs",
    "errors",
    "p50 ms",
    "p99 ms",
    "max ms",
    "probe p99 ms",
    "set-up s",
    "conn p50 ms",
    "conn p99 ms",
    "CPU broker %",
    "CPU gen %",
    "CPU other %",
    "note",
]


def summary_rows(res: dict[str, list[dict[str, Any]]]) -> tuple[list[str], list[list[Any]]]:
    rows: list[list[Any]] = []
    for kind, steps in res.items():
        for r in steps:
            if "errors" not in r:
                rows.append([kind, r["families"], *["-"] * 12, "not run: " + r["stopped"]])
                continue
            note = ", ".join(f"{k} {v}" for k, v in r["error_kinds"].items())
            setup = [r["connect_s"], r["conn_p50_ms"], r["conn_p99_ms"]]
            if "hugs" in r:
                cpu = r["cpu_window_pct"]
                lat = [r["hugs"], r["errors"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["probe_p99_ms"]]
            else:
                cpu, lat = r["cpu_setup_pct"], ["-", r["errors"], "-", "-", "-", "-"]
                note = f"set-up failed ({note}); CPU during set-up, no window"
            cpus = [round(cpu[k]) for k in ("broker", "workers", "others")]
            rows.append([kind, r["families"], *lat, *setup, *cpus, note])
    return HEADERS, rows


def verdict(steps: list[dict[str, Any]]) -> str:
    """Where the ramp ended and who was using the CPU there."""
    run = [r for r in steps if "errors" in r]
    if not run:
        return "no step ran"
    last = run[-1]
    if "hugs" not in last:
        c = last["cpu_setup_pct"]
        what = (
            f"set-up failed at {last['families']} families ({last['error_kinds']}; connections "
            f"p99 {last['conn_p99_ms'] / 1000:.1f} s)"
        )
    else:
        c = last["cpu_window_pct"]
        what = f"at {last['families']} families p99 {last['p99_ms']:.1f} ms, errors {last['errors']}"
        if passed(last):
            stop = next((r["stopped"] for r in steps if "stopped" in r), "the end of the ramp")
            what = f"no failing step; stopped by {stop}; {what}"
    return (
        f"{what}: CPU broker {c['broker']:.0f}%, load generator {c['workers']:.0f}%, "
        f"other processes {c['others']:.0f}% (% of one core)"
    )


def main() -> dict[str, Any]:
    logging.getLogger("hugapp").setLevel(logging.ERROR)
    fd_limit = raise_nofile()
    ncpu = os.cpu_count() or 1
    print(
        f"scale: families ramped {STEPS}; {WORKERS} load-generator processes; one hug per family every "
        f"{PERIOD_S:.0f} s (random phase), {WINDOW_S:.0f} s measured per step; stop at p99 > "
        f"{P99_LIMIT_MS:.0f} ms, errors, {BUDGET_S:.0f} s per broker or the fd limit ({fd_limit})",
        flush=True,
    )
    t_all = time.monotonic()
    exe = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    base = Path(tempfile.mkdtemp(prefix="hug-bench-scale-", dir=SHM))
    res: dict[str, list[dict[str, Any]]] = {}
    try:
        if "mosquitto" in BROKERS and exe:
            res["mosquitto"] = ramp("mosquitto", base, fd_limit, exe)
        elif "mosquitto" in BROKERS:
            print("  mosquitto not installed: only the embedded broker is measured")
        if "cluster" in BROKERS:
            if find_nats_server():
                res["cluster"] = ramp("cluster", base, fd_limit, None)
            else:
                print("  nats-server not installed: the cluster is not measured")
        if "embedded" in BROKERS:
            res["embedded"] = ramp("embedded", base, fd_limit, None)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    total_s = time.monotonic() - t_all
    headers, rows = summary_rows(res)
    print(table(headers, rows))
    knees = {kind: knee(steps) for kind, steps in res.items()}
    texts = {kind: knee_text(steps) for kind, steps in res.items()}
    verdicts = {kind: verdict(steps) for kind, steps in res.items()}
    print(
        "knee (largest step with p99 <= 100 ms and no errors): "
        + ", ".join(f"{k} {v}" for k, v in texts.items())
        + f"; scale benchmark took {total_s / 60:.1f} min",
        flush=True,
    )
    for kind, v in verdicts.items():
        print(f"  {kind}: {v}")
    md = (
        f"Families of two companions (the product's Relay, each with its own SQLite Store and MQTT "
        f"connection), {WORKERS} load-generator processes beside the broker on the same {ncpu} CPUs, "
        f"loopback. Steady offered load: one hug per family every {PERIOD_S:.0f} s (random phase and "
        f"direction), {WINDOW_S:.0f} s measured per step after the step's new companions connected; "
        f"latency = Relay.send -> partner's on_message; errors = hugs not delivered within "
        f"{TIMEOUT_S:.0f} s, refused sends, reconnects, or companions not connected within "
        f"{CONNECT_TIMEOUT_S:.0f} s. Set-up s = time for the step's new connections to come up "
        f"({CONNECT_CONCURRENCY} in flight per worker), conn p50/p99 = per connection. CPU % of one "
        f"core over the window (machine = {100 * ncpu}%): broker process(es; the cluster: its three nodes), "
        f"load generator (workers + probe), "
        f"and everything else on the machine. Probe = bare MQTT QoS 1 publish -> receive every "
        f"{PROBE_EVERY_S * 1000:.0f} ms during the window, from a process of its own: the broker's own "
        f"latency under that load.\n\n"
        + md_table(headers, rows)
        + "\n\nKnee (largest step with p99 <= 100 ms and no errors): "
        + ", ".join(f"**{k}: {v}**" for k, v in texts.items())
        + f" (target >= {TARGET:,} on Mosquitto). Whole scale benchmark: {total_s / 60:.1f} min.\n\n"
        + "\n".join(f"* {kind}: {v}." for kind, v in verdicts.items())
    )
    data = {
        "steps": res,
        "knee": knees,
        "knee_text": texts,
        "verdict": verdicts,
        "p99_limit_ms": P99_LIMIT_MS,
        "budget_s": BUDGET_S,
        "fd_limit": fd_limit,
        "workers": WORKERS,
        "period_s": PERIOD_S,
        "window_s": WINDOW_S,
        "timeout_s": TIMEOUT_S,
        "total_s": total_s,
        "repo": str(REPO),
    }
    # a run on some of the brokers (or a reduced ramp) is saved beside the full one, not over it
    full = BROKERS == ALL_BROKERS and "HUG_BENCH_SCALE_STEPS" not in os.environ
    save("scale" if full else "scale_" + "_".join(BROKERS), data, md)
    return data


if __name__ == "__main__":
    main()
