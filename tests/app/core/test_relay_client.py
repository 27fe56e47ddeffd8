"""The MQTT client under the relay, when a broker answers a connect after the companion gave up on it,
or takes a subscription and delivers nothing."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from relaykit import EmbeddedTestBroker

from hugapp.core.hubtunnel import HubTunnel
from hugapp.core.relay import (
    PROBE_S,
    NotDelivering,
    delivering,
    make_client,
    parse_broker_url,
    parse_broker_urls,
    publish,
)

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


async def deaf_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A node that acknowledges everything (connect, subscribe, publish, ping) and delivers nothing,
    as a NATS node rejoining its cluster did to a hub's subscription."""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            head = (await reader.readexactly(1))[0]
            length, shift = 0, 0
            while True:
                byte = (await reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            body = await reader.readexactly(length)
            kind = head >> 4
            if kind == 1:  # CONNECT
                writer.write(CONNACK)
            elif kind == 8:  # SUBSCRIBE: granted QoS 1
                writer.write(bytes([0x90, 0x03]) + body[:2] + b"\x01")
            elif kind == 3 and head & 0x06:  # PUBLISH, QoS 1: its packet id follows the topic
                at = 2 + int.from_bytes(body[:2], "big")
                writer.write(bytes([0x40, 0x02]) + body[at : at + 2])
            elif kind == 12:  # PINGREQ
                writer.write(bytes([0xD0, 0x00]))
            await writer.drain()


def test_a_session_that_takes_a_subscription_but_delivers_nothing_is_given_up() -> None:
    """On the deaf node the session's own probe never comes back: NotDelivering, and that node is
    tried last next time. On a real broker the probe comes back (ready), later messages are
    delivered and no probe is."""

    async def scenario() -> None:
        deaf = await asyncio.start_server(deaf_broker, "127.0.0.1", 0)
        deaf_url = f"mqtt://127.0.0.1:{deaf.sockets[0].getsockname()[1]}"
        async with deaf, EmbeddedTestBroker() as real:
            urls = parse_broker_urls(f"{deaf_url},{real.url}")
            ready = asyncio.Event()
            t0 = asyncio.get_running_loop().time()
            async with make_client(urls[0], None, identifier="deaf") as client:
                await client.subscribe("hug/v1/hub/x", qos=1)
                with pytest.raises(NotDelivering) as given_up:
                    async for _ in delivering(client, "hug/v1/hub/x", ready):
                        pass
            assert PROBE_S <= asyncio.get_running_loop().time() - t0 < PROBE_S + 2
            assert not ready.is_set()
            assert given_up.value.next_first(urls) == [urls[1], urls[0]]
            async with make_client(urls[1], None, identifier="real") as client:
                await client.subscribe("hug/v1/hub/x", qos=1)
                got: list[bytes] = []

                async def take() -> None:
                    async for message in delivering(client, "hug/v1/hub/x", ready):
                        got.append(bytes(message.payload))  # type: ignore[arg-type]
                        return

                taker = asyncio.ensure_future(take())
                await asyncio.wait_for(ready.wait(), PROBE_S)
                await publish(client, "hug/v1/hub/x", b"")  # another probe: not a message
                await publish(client, "hug/v1/hub/x", b"sealed")
                await asyncio.wait_for(taker, 5)
                assert got == [b"sealed"]

    asyncio.run(scenario())


def test_a_hub_tunnel_on_a_deaf_node_moves_to_the_next() -> None:
    """The owner's hub tunnel given a deaf node first comes online on the next within the probe."""

    async def scenario() -> None:
        deaf = await asyncio.start_server(deaf_broker, "127.0.0.1", 0)
        deaf_url = f"mqtt://127.0.0.1:{deaf.sockets[0].getsockname()[1]}"
        async with deaf, EmbeddedTestBroker() as real:
            tunnel = HubTunnel(f"{deaf_url},{real.url}", bytes(32))
            running = asyncio.ensure_future(tunnel.run())
            try:
                await asyncio.wait_for(tunnel.online.wait(), PROBE_S + 5)
                assert tunnel.brokers[0].port == real.port, "the deaf node is tried last from now on"
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

    asyncio.run(scenario())
