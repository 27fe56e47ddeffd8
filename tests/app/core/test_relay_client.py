"""The MQTT client under the relay, when a broker answers a connect after the companion gave up on it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hugapp.core.relay import make_client, parse_broker_url

CONNACK = bytes([0x20, 0x02, 0x00, 0x00])  # MQTT 3.1.1: session not present, accepted


def test_a_connect_answered_after_its_timeout_raises_nothing_into_the_event_loop() -> None:
    """A node still electing its JetStream leader answers CONNACK after the client's timeout, then
    drops the connection. aiomqtt 2.5 raised CancelledError out of paho's reader there (asyncio
    printed "Exception in callback None()" into `hugbutton broker --cluster`). The product's client
    does not."""

    async def scenario() -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        answered = asyncio.Event()

        async def late_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1024)  # CONNECT
            await asyncio.sleep(0.6)  # past the client's 0.3 s
            writer.write(CONNACK)
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.close()
            answered.set()

        server = await asyncio.start_server(late_broker, "127.0.0.1", 0)
        url = f"mqtt://127.0.0.1:{server.sockets[0].getsockname()[1]}"

        async def connect() -> None:
            async with asyncio.timeout(0.3), make_client(parse_broker_url(url), None, identifier="late"):
                pass

        async with server:
            with pytest.raises(TimeoutError):
                await connect()
            await asyncio.wait_for(answered.wait(), 5)
            await asyncio.sleep(0.5)  # paho's reader sees the CONNACK and the close
        return errors

    errors = asyncio.run(scenario())
    assert errors == [], [str(e.get("exception") or e.get("message")) for e in errors]
