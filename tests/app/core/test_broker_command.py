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
