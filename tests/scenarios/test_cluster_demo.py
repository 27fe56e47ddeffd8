"""`hugbutton demo --broker mqtt://A,mqtt://B,mqtt://C --hugs N` while the node both phones use is
SIGKILLed after the first hug (and restarted): every hug arrives once, and the demo exits cleanly (no
traceback on stderr). The demo's own words say when the family is online, so the kill lands among the
hugs, not in the set-up's linking and band sharing. (`--json` is covered by test_demo_hugs.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import sys
import time

import aiomqtt
from relaykit import HOST, ClusterTestBroker

from hugapp.dev.cluster import NatsCluster

HUGS = 3  # within the storm rule (3 buzzes a minute): the run is not stretched by it
ONLINE = "every phone and the gateway online"  # the demo's line once the family is set up
SUMMARY = re.compile(
    r"(\d+) hugs sent by Mia, (\d+) received by Mum, (\d+) felt, (\d+) lost, (\d+) duplicates"
)


def test_demo_survives_the_death_of_the_node_in_use(nats_cluster: NatsCluster) -> None:
    broker = ClusterTestBroker(nats_cluster)

    async def main() -> tuple[int, str, str, float]:
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
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1"},
            )
            assert demo.stdout is not None
            assert demo.stderr is not None
            lines: list[str] = []
            online = asyncio.Event()

            async def read_out(stream: asyncio.StreamReader) -> None:
                async for raw in stream:
                    lines.append(raw.decode(errors="replace"))
                    if ONLINE in lines[-1]:
                        online.set()

            # an observer on the last node (never killed) sees every sealed inbox message; the first
            # once the family is online is the first hug: the node in use dies then, while the later
            # presses are still in the bands' multi-tap windows, so they and every ack cross nodes
            seen: list[float] = []
            first = asyncio.Event()

            async def observe(watch: aiomqtt.Client) -> None:
                async for _ in watch.messages:
                    if online.is_set():
                        seen.append(time.monotonic())
                        first.set()

            out_task = asyncio.create_task(read_out(demo.stdout))
            err_task = asyncio.create_task(demo.stderr.read())
            async with aiomqtt.Client(HOST, broker.port, identifier="watch-" + secrets.token_hex(4)) as watch:
                await watch.subscribe("hug/v1/in/#", qos=0)
                observer = asyncio.create_task(observe(watch))
                async with asyncio.timeout(180):
                    await first.wait()
                await nats_cluster.kill(0)
                t_kill = time.monotonic()
                await asyncio.sleep(3.0)
                await nats_cluster.restart(0)
                async with asyncio.timeout(400):
                    await demo.wait()
                    await out_task
                    err = (await err_task).decode(errors="replace")
                observer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await observer
            after = [t for t in seen if t > t_kill]
            assert len(after) >= HUGS - 1, (
                f"only {len(after)} of {len(seen)} inbox messages after the kill; the demo's stderr:\n"
                + err[-3000:]
            )
            assert demo.returncode is not None
            return demo.returncode, "".join(lines), err, time.monotonic() - t_kill

    code, out, stderr, after_kill = asyncio.run(main())
    assert code == 0, out[-2000:] + stderr[-3000:]
    found = SUMMARY.findall(out)
    assert found, out[-2000:]
    sent, received, felt, lost, duplicates = map(int, found[-1])
    assert (sent, received, felt, lost, duplicates) == (HUGS, HUGS, HUGS, 0, 0), out[-2000:]
    assert "Mia has no phone" in out
    for noise in ("Traceback", "Exception in callback", "never retrieved"):
        assert noise not in stderr, stderr[-3000:]
    print(f"demo --hugs {HUGS}: done {after_kill:.0f} s after the node was killed: {found[-1]}")
