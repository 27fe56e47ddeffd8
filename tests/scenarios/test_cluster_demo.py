"""`hugbutton demo --broker mqtt://A,mqtt://B,mqtt://C --hugs N --json` while the node both phones use
is SIGKILLed mid-run (and restarted): every hug arrives once, and the demo exits cleanly (no
traceback on stderr)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import time

import aiomqtt
from relaykit import HOST, ClusterTestBroker

from hugapp.dev.cluster import NatsCluster

HUGS = 3  # within the storm rule (3 buzzes a minute): the run is not stretched by it


def test_demo_survives_the_death_of_the_node_in_use(nats_cluster: NatsCluster) -> None:
    broker = ClusterTestBroker(nats_cluster)

    async def main() -> tuple[int, bytes, bytes, float]:
        async with broker:
            demo = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hugapp.cli",
                "demo",
                "--broker",
                broker.url,  # both phones connect to node 0 first
                "--hugs",
                str(HUGS),
                "--json",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )
            # an observer on the last node (never killed) sees every sealed inbox message; the first
            # is the first hug: the node in use dies then, while the later presses are still in the
            # bands' multi-tap windows, so they and every ack cross to another node
            seen: list[float] = []
            first = asyncio.Event()

            async def observe(watch: aiomqtt.Client) -> None:
                async for _ in watch.messages:
                    seen.append(time.monotonic())
                    first.set()

            async with aiomqtt.Client(HOST, broker.port, identifier="watch-" + secrets.token_hex(4)) as watch:
                await watch.subscribe("hug/v1/in/#", qos=0)
                observer = asyncio.create_task(observe(watch))
                async with asyncio.timeout(120):
                    await first.wait()
                await nats_cluster.kill(0)
                t_kill = time.monotonic()
                await asyncio.sleep(3.0)
                await nats_cluster.restart(0)
                async with asyncio.timeout(400):
                    out, err = await demo.communicate()
                observer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await observer
            after = [t for t in seen if t > t_kill]
            assert len(after) >= HUGS - 1, (
                f"only {len(after)} of {len(seen)} inbox messages after the kill; the demo's stderr:\n"
                + err.decode(errors="replace")[-3000:]
            )
            assert demo.returncode is not None
            return demo.returncode, out, err, time.monotonic() - t_kill

    code, out, err, after_kill = asyncio.run(main())
    stderr = err.decode(errors="replace")
    assert code == 0, stderr[-3000:]
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["sent"] == HUGS
    assert summary["received"] == HUGS
    assert summary["felt"] == HUGS
    assert summary["lost"] == 0
    assert summary["duplicates"] == 0
    for noise in ("Traceback", "Exception in callback", "never retrieved"):
        assert noise not in stderr, stderr[-3000:]
    print(f"demo --hugs {HUGS}: done {after_kill:.0f} s after the node was killed: {summary}")
