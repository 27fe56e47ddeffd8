"""The fault test's ``broker_kill`` kind on the three-node NATS cluster, kept short beside the full
fault test: the same two families (four bands pressed all the time, phones in their own processes,
each given all three nodes), while the node the phones use is SIGKILLed and restarted, twice (node 0,
then node 1, where they went). Every registered press reaches the partner's phone exactly once and
is felt; no Play token buzzes twice; delivery resumes within seconds of each kill."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

from test_fault_injection import TOKEN_INTERNAL, Fault, Run, _pct
from testkit import require_tool

from hugapp.dev.cluster import NatsCluster
from hugsim.airspace import Airspace, AirspaceControl

PER_BAND = 12
KILLS = 2
RESUME_P99_S = 30.0  # JetStream elects new leaders for the dead node's streams: ~10 s measured


class Nodes:
    """What the phones are given instead of the fault test's proxy: every node of the cluster."""

    def __init__(self, cluster: NatsCluster) -> None:
        self.url = cluster.url


class ClusterRun(Run):
    def __init__(self, tmp: Path, rng: random.Random, cluster: NatsCluster) -> None:
        super().__init__(tmp, rng)
        self.cluster = cluster

    async def kill_nodes(self) -> None:
        for node in range(KILLS):  # the phones start on node 0; after its death they are on node 1
            await asyncio.sleep(self.rng.uniform(2.0, 4.0))
            start = self.now()
            await self.cluster.kill(node)
            await asyncio.sleep(self.rng.uniform(0.2, 1.5))
            await self.cluster.restart(node)
            self.faults.append(Fault("broker_kill", f"node {node}", start, self.now()))


def test_node_kills_under_load_on_the_cluster(tmp_path: Path) -> None:
    exe = require_tool("nats-server")

    async def main() -> None:
        t0 = time.monotonic()
        server = Airspace()
        air = await server.start()
        cluster = NatsCluster(tmp_path / "nats", 3, exe=exe)
        await cluster.start()
        run = ClusterRun(tmp_path, random.Random(2027), cluster)
        try:
            async with AirspaceControl(air) as control:
                await run.start(air, control, None, Nodes(cluster))  # pyright: ignore[reportArgumentType]
                observer = asyncio.ensure_future(run.observe())
                faults = asyncio.ensure_future(run.kill_nodes())
                await run.press_all(PER_BAND)
                await faults
                try:
                    await run.settle()
                except TimeoutError:
                    raise AssertionError(f"not every hug arrived and was felt:\n{run.report()}") from None
                await asyncio.sleep(3.0)  # a duplicate would arrive now
                observer.cancel()
                received = sum(run.received(s) for s in run.sides)
                registered = run.registered()
                duplicate_buzzes = 0
                for side in run.sides:
                    tokens = Counter(
                        int(e.value)  # pyright: ignore[reportArgumentType]
                        for e in await control.timeline(side.address)
                        if e.kind == "play" and int(e.value) < TOKEN_INTERNAL  # pyright: ignore
                    )
                    duplicate_buzzes += sum(c - 1 for c in tokens.values())
        finally:
            await run.stop()  # the hub's process too
            await cluster.stop()
            await server.close()

        sent = sum(len(p) for p in run.presses.values())
        recovery = [t for t, _k in run.recovery_latencies()]
        p99 = _pct(recovery, 0.99)
        print(
            f"\ncluster node kills: {sent} presses, {len(run.faults)} node kills, {registered} registered, "
            f"{received} received, {duplicate_buzzes} duplicate buzzes; delivery after recovery "
            f"p50 {_pct(recovery, 0.5):.1f} s, p99 {p99:.1f} s; total {time.monotonic() - t0:.0f} s"
        )
        assert len(run.faults) == KILLS
        assert sent - registered <= 1
        assert received == registered, "no registered press is lost and none is received twice"
        assert duplicate_buzzes == 0
        assert p99 <= RESUME_P99_S

    asyncio.run(asyncio.wait_for(main(), 600))
