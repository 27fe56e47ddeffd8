"""Helpers for the relay tests: brokers (embedded amqtt, real Mosquitto, a three-node NATS cluster),
phones, waiting on events.

A `TestBroker` is started inside the test's event loop (`async with broker:`), can `restart()` on the
same port, and exposes `url`; `url_for(i)` is what companion number i is given (on the cluster: every
node, starting with node i, so two families sit on different nodes).

A `Phone` is one companion: its own SQLite store and identity, a Relay it can start and stop, and
records of what its handlers saw.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hugapp.core import relaystore as rs
from hugapp.core.broker import EmbeddedBroker, free_port
from hugapp.core.relay import Incoming, Relay
from hugapp.core.store import Store
from hugapp.dev.cluster import READY_TIMEOUT_S, NatsCluster

HOST = "127.0.0.1"
TEST_TIMEOUT = 40.0


def run(coro: Awaitable[Any], timeout: float = TEST_TIMEOUT) -> Any:
    """Run one test's coroutine with a hard time bound."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Changed:
    """Something happened: handlers call `notify()`, tests `await until(predicate)`."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._event.clear()
                if predicate():
                    return
                await self._event.wait()


# ------------------------------------------------------------------------------------- brokers


def wait_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)  # readiness poll of an external process: there is no event to await


class TestBroker:
    kind = ""
    port = 0
    restart_s = 5.0  # the most `restart()` may take, beyond a test's own time

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def url_for(self, index: int) -> str:
        return self.url

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> TestBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class EmbeddedTestBroker(TestBroker):
    kind = "embedded"

    def __init__(self) -> None:
        self._b: EmbeddedBroker | None = None

    async def start(self) -> None:
        self._b = EmbeddedBroker(HOST, self.port)
        await self._b.start()
        self.port = self._b.port

    async def stop(self) -> None:
        if self._b is not None:
            await self._b.stop()
            self._b = None


class MosquittoTestBroker(TestBroker):
    kind = "mosquitto"

    def __init__(self, exe: str, workdir: Path, extra_conf: str = "", anonymous: bool = True) -> None:
        self.exe = exe
        self.workdir = workdir
        self.extra_conf = extra_conf
        self.anonymous = anonymous
        self.port = free_port(HOST)
        self._proc: subprocess.Popen[bytes] | None = None

    def config(self) -> Path:
        data = self.workdir / "mosq-data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {HOST}\n"
            f"allow_anonymous {'true' if self.anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            "set_tcp_nodelay true\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\n"
            # as root, Mosquitto would switch to its own user, which cannot read the test's files
            + ("user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else "")
            + self.extra_conf
        )
        return conf

    def _spawn(self) -> subprocess.Popen[bytes]:
        conf = self.config()
        with open(self.workdir / "mosquitto.log", "ab") as log:
            proc = subprocess.Popen([self.exe, "-c", str(conf)], stdout=log, stderr=log)
        wait_port(self.port)
        return proc

    async def start(self) -> None:
        self._proc = await asyncio.to_thread(self._spawn)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 5)


class ClusterTestBroker(TestBroker):
    """Three nats-server nodes, shared by the tests of a session (starting them takes seconds):
    `start()` brings back any node a test left dead, `stop()` leaves them running, `restart()` really
    restarts every node (same ports, same JetStream stores)."""

    kind = "cluster"
    restart_s = READY_TIMEOUT_S  # every node at once: JetStream elects its leaders again, 13-37 s here

    def __init__(self, cluster: NatsCluster) -> None:
        self.cluster = cluster
        self.port = cluster.nodes[-1].mqtt_port  # a raw client (an attacker, an observer): the last node

    @property
    def url(self) -> str:
        return self.cluster.url

    def url_for(self, index: int) -> str:
        return self.cluster.url_from(index)

    async def start(self) -> None:
        await self.cluster.start()

    async def stop(self) -> None:
        pass

    async def restart(self) -> None:
        await self.cluster.stop()
        await self.cluster.start()


def make_broker(kind: str, workdir: Path, cluster: NatsCluster | None = None) -> TestBroker:
    if kind == "embedded":
        return EmbeddedTestBroker()
    if kind == "cluster":
        assert cluster is not None, "the cluster kind runs on the session's nats_cluster"
        return ClusterTestBroker(cluster)
    from testkit import require_tool

    return MosquittoTestBroker(require_tool("mosquitto"), workdir)


# -------------------------------------------------------------------------------------- phones


class Phone:
    def __init__(self, workdir: Path, name: str, clock: Callable[[], float] | None = None) -> None:
        self.name = name
        self.clock: Callable[[], float] = clock or time.time
        self.db_path = workdir / f"{name.split()[0].lower()}.sqlite3"
        self.store = Store(self.db_path, self.clock)
        self.me = rs.ensure_identity(self.store, name)
        self.received: list[Incoming] = []
        self.acked: list[tuple[str, str]] = []
        self.presence: list[tuple[str, str, bool]] = []
        self.rejected: list[str] = []
        self.changed = Changed()
        self.relay: Relay | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def member_id(self) -> str:
        return self.me.member_id

    def handled_counts(self) -> Counter[str]:
        return Counter(m.msg_id for m in self.received)

    def acked_ids(self) -> set[str]:
        return {mid for mid, _ in self.acked}

    async def _on_message(self, m: Incoming) -> None:
        self.received.append(m)
        self.changed.notify()

    def _on_acked(self, msg_id: str, by: str) -> None:
        self.acked.append((msg_id, by))
        self.changed.notify()

    def _on_presence(self, link_id: str, member_id: str, online: bool) -> None:
        self.presence.append((link_id, member_id, online))
        self.changed.notify()

    def _on_rejected(self, reason: str, topic: str) -> None:
        self.rejected.append(reason)
        self.changed.notify()

    def _on_members(self, link_id: str) -> None:
        self.changed.notify()

    def make_relay(self, url: str, **kw: Any) -> Relay:
        options: dict[str, Any] = {"retry_interval": 60.0, "poll_interval": 0.05, "reconnect_min": 0.2}
        options.update(kw)
        relay = Relay(
            self.store,
            self.me,
            url,
            clock=self.clock,
            on_message=self._on_message,
            on_acked=self._on_acked,
            on_presence=self._on_presence,
            on_members=self._on_members,
            on_rejected=self._on_rejected,
            on_published=lambda _m, _r: self.changed.notify(),
            **options,
        )
        self.relay = relay
        return relay

    async def start(self, url: str, **kw: Any) -> Relay:
        relay = self.make_relay(url, **kw)
        self._task = asyncio.create_task(relay.run())
        async with asyncio.timeout(10):
            await relay.connected.wait()
        return relay

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def rows(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for table in ("relay_seen", "relay_outbox", "link_members", "links"):
            counts[table] = int(self.store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        counts["acked"] = int(
            self.store.db.execute("SELECT COUNT(*) FROM relay_outbox WHERE acked_at IS NOT NULL").fetchone()[
                0
            ]
        )
        return counts


def make_circle(*phones: Phone, name: str = "family") -> str:
    """Put phones in one circle directly through their stores (what linking stores), return link id."""
    link_id = rs.new_id()
    key = os.urandom(32)
    for phone in phones:
        now = phone.store.now()
        with phone.store.transaction() as db:
            rs.save_link(db, link_id, key, name, now)
            for sig, other in enumerate(phones, start=1):
                m = other.me
                rs.save_member(
                    db, rs.Member(link_id, m.member_id, m.name, m.mailbox, m.presence_key, sig), now
                )
    return link_id


def tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="hug-relay-"))
