"""The embedded MQTT broker for one household (amqtt, in-process, pure Python).

    async with EmbeddedBroker("127.0.0.1", 0) as b:   # port 0: a free port, see b.port / b.url
        ...

Anonymous clients are allowed, so it binds to loopback by default; expose it on a LAN only knowingly.
amqtt does not queue QoS 1 messages for offline persistent sessions (FIELD-NOTES): the relay does not
depend on it. Production is Mosquitto (deploy/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

from amqtt.broker import Broker  # pyright: ignore[reportMissingTypeStubs]

from hugapp.core.envelope import RelayError

log = logging.getLogger("hugapp.broker")


class BrokerError(RelayError):
    """The embedded broker could not start (port taken, bad address)."""


def _bound_port(broker: Any, host: str, requested: int) -> int:
    """The port amqtt bound (it does not report it; read its listener socket)."""
    servers: Any = getattr(broker, "_servers", {})
    for server in servers.values():
        for sock in getattr(server.instance, "sockets", ()) or ():
            return int(sock.getsockname()[1])
    if requested:
        return requested
    raise BrokerError(f"could not tell which port the broker bound on {host}")


class _SnapshotDict(dict[str, Any]):
    """amqtt 0.12.1 iterates its subscription table across awaits (when a client connects, and for
    each broadcast); a client subscribing meanwhile raised "dictionary changed size during iteration"
    and cut the connecting client off. Iterating a snapshot instead keeps every connection."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(super().items())


class EmbeddedBroker:
    """amqtt's broker on host:port (port 0 picks a free one). Anonymous access, MQTT 3.1.1."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.requested_port = port
        self.port = port
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.requested_port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        broker: Any = Broker(config)
        broker._subscriptions = _SnapshotDict(broker._subscriptions)  # see _SnapshotDict
        try:
            await broker.start()
        except Exception as e:
            raise BrokerError(
                f"cannot start the embedded broker on {self.host}:{self.requested_port}: {e}"
            ) from e
        self._broker = broker
        self.port = _bound_port(broker, self.host, self.requested_port)
        log.info("embedded broker listening on %s", self.url)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            with contextlib.suppress(Exception):
                await broker.shutdown()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def run_broker(host: str = "127.0.0.1", port: int = 1883) -> None:
    """`hugbutton broker`: run the household broker, print its URL, until cancelled (Ctrl-C)."""
    async with EmbeddedBroker(host, port) as b:
        print(f"Hug Button broker running at {b.url} (Ctrl-C to stop)", flush=True)
        await asyncio.Event().wait()
