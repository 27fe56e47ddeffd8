"""`hugbutton broker`: the household broker as a user starts it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiomqtt
from relaykit import Phone, make_circle

from hugapp.core.broker import free_port


def test_broker_command_serves_mqtt_until_stopped() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hugapp.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f"mqtt://127.0.0.1:{port}" in proc.stdout.readline()

        async def round_trip() -> bytes:
            async with aiomqtt.Client("127.0.0.1", port) as sub, aiomqtt.Client("127.0.0.1", port) as pub:
                await sub.subscribe("hug/test", qos=1)
                await pub.publish("hug/test", b"hello", qos=1)
                async for message in sub.messages:
                    return bytes(message.payload)  # type: ignore[arg-type]
            return b""

        assert asyncio.run(asyncio.wait_for(round_trip(), 20)) == b"hello"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode is not None


def test_embedded_broker_takes_many_companions_connecting_at_once(tmp_path: Path) -> None:
    """amqtt 0.12.1 dropped a client that connected while another subscribed (fixed in broker.py)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hugapp.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"mqtt://127.0.0.1:{port}"

    async def main() -> None:
        families: list[tuple[Phone, Phone, str]] = []
        try:
            for i in range(6):  # family after family; both phones of a family at the same time
                a, b = Phone(tmp_path, f"kid{i} K"), Phone(tmp_path, f"mum{i} M")
                families.append((a, b, make_circle(a, b)))
                await asyncio.gather(a.start(url), b.start(url))
            sent = []
            for a, _b, link in families:
                assert a.relay is not None
                sent.append(await a.relay.send(link, {"gesture": "tap"}))
            async with asyncio.timeout(20):  # a bounded poll over six handlers
                while not all(b.received for _a, b, _l in families):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        finally:
            await asyncio.gather(*(p.stop() for a, b, _l in families for p in (a, b)), return_exceptions=True)
        for (_a, b, _l), mid in zip(families, sent, strict=True):
            assert [m.msg_id for m in b.received] == [mid]

    try:
        assert proc.stdout is not None
        assert url in proc.stdout.readline()
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_broker_cluster_command_prints_every_node_and_stops_them(tmp_path: Path) -> None:
    """`hugbutton broker --cluster 3`: three nats-server nodes; the printed --broker value works for
    two relays on different nodes; SIGTERM stops the nodes as well."""
    from testkit import require_tool

    require_tool("nats-server")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hugapp.cli", "broker", "--cluster", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "3 node(s)" in proc.stdout.readline()
        line = proc.stdout.readline().split()
        assert line[0] == "--broker"
        urls = line[1].split(",")
        assert len(urls) == 3
        assert all(u.startswith("mqtt://127.0.0.1:") for u in urls)

        async def hug() -> None:
            a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            link = make_circle(a, b)
            ra = await a.start(line[1])
            await b.start(",".join(urls[1:] + urls[:1]))  # B starts on the second node
            sent = await ra.send(link, {"n": 1})
            await b.changed.until(lambda: sent in b.handled_counts())
            await a.changed.until(lambda: sent in a.acked_ids())
            await a.stop()
            await b.stop()

        asyncio.run(asyncio.wait_for(hug(), 60))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    nodes = subprocess.run(["pgrep", "-f", "hugbutton-nats-"], capture_output=True, text=True, check=False)
    assert not [p for p in nodes.stdout.split() if p], "the nodes stopped with the command"
