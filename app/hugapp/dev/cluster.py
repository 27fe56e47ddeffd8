"""A NATS cluster on loopback for development and tests: `hugbutton broker --cluster 3`.

    async with NatsCluster(workdir, 3) as cluster:   # three nats-server processes, MQTT on each
        cluster.url            # "mqtt://127.0.0.1:P1,mqtt://127.0.0.1:P2,mqtt://127.0.0.1:P3"
        await cluster.kill(0)  # SIGKILL one node; await cluster.restart(0) brings it back

Each node has its own client, route, MQTT and monitoring ports and its own JetStream store; MQTT
sessions, QoS 1 messages in flight and retained messages are JetStream streams replicated on every node
(R3 with three), so a companion resumes its session on any node. Production: deploy/nats/.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

import aiomqtt

from hugapp.core.broker import BrokerError, free_port
from hugapp.core.relay import make_client, parse_broker_url

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0  # JetStream's first leader elections take seconds, longer on a loaded machine
SETTLE_S = 20.0  # after a node's restart, JetStream is usually current again within 3-9 s


def find_nats_server() -> str | None:
    """nats-server on PATH, or Debian's /usr/sbin (not on a user's PATH)."""
    return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/local/sbin")


class Node:
    def __init__(self, index: int, workdir: Path) -> None:
        self.index = index
        self.name = f"hug-n{index + 1}"
        self.client_port = free_port(HOST)
        self.route_port = free_port(HOST)
        self.mqtt_port = free_port(HOST)
        self.monitor_port = free_port(HOST)
        self.store = workdir / self.name
        self.conf = workdir / f"{self.name}.conf"
        self.log = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.mqtt_port}"

    def write_config(self, routes: list[int]) -> None:
        # R3 needs three nodes; fixed here, or the first client's account gets the peers known then
        replicas = 3 if len(routes) >= 2 else 1
        route_urls = ", ".join(f'"nats-route://{HOST}:{p}"' for p in routes)
        self.conf.write_text(
            f'server_name: "{self.name}"\n'
            f"listen: {HOST}:{self.client_port}\n"
            f'jetstream {{ store_dir: "{self.store}", max_memory_store: 64MB, max_file_store: 1GB }}\n'
            f'cluster {{ name: "hug-dev", listen: {HOST}:{self.route_port}, routes: [{route_urls}] }}\n'
            f"mqtt {{ listen: {HOST}:{self.mqtt_port}, stream_replicas: {replicas} }}\n"
            f"http: {HOST}:{self.monitor_port}\n"
        )


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def _healthy(monitor_port: int) -> bool:
    """The node's /healthz: 200 once it is current with JetStream's meta leader and every stream and
    consumer it holds is current (after a node's restart, sessions resume only then)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{monitor_port}/healthz", timeout=2) as r:
            return bool(r.status == 200)
    except (OSError, ValueError):  # refused, 503 (HTTPError is an OSError), garbled
        return False


async def _mqtt_round_trip(url_port: int) -> bool:
    """A QoS 1 message to itself through one node: its MQTT layer and JetStream answer."""
    topic = f"hug/probe/{secrets.token_hex(8)}"
    try:
        async with asyncio.timeout(5):
            async with make_client(
                parse_broker_url(f"mqtt://{HOST}:{url_port}"),
                None,
                identifier="hug-probe-" + secrets.token_hex(6),
                clean_session=True,
            ) as client:
                await client.subscribe(topic, qos=1)
                await client.publish(topic, b"ok", qos=1)
                async for _ in client.messages:
                    return True
    except (aiomqtt.MqttError, TimeoutError, OSError):
        return False
    return False


class NatsCluster:
    """`size` nats-server nodes on loopback, all routed to each other, MQTT on each."""

    def __init__(self, workdir: Path, size: int = 3, exe: str | None = None) -> None:
        if size < 1:
            raise BrokerError("a cluster needs at least one node")
        found = exe or find_nats_server()
        if found is None:
            raise BrokerError("nats-server is not installed (Debian: apt install nats-server)")
        self.exe = found
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = [Node(i, workdir) for i in range(size)]
        for node in self.nodes:
            node.write_config([n.route_port for n in self.nodes if n is not node])

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """Every node, as one --broker value."""
        return ",".join(self.urls)

    def url_from(self, first: int) -> str:
        """Every node, starting with node `first` (a companion connects to the first it can)."""
        k = first % len(self.nodes)
        return ",".join(self.urls[k:] + self.urls[:k])

    def running(self, index: int) -> bool:
        proc = self.nodes[index].proc
        return proc is not None and proc.poll() is None

    def _spawn(self, node: Node) -> None:
        with open(node.log, "ab") as log:
            node.proc = subprocess.Popen(
                [self.exe, "-c", str(node.conf)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )

    async def wait_ready(self, indexes: list[int] | None = None, timeout: float = READY_TIMEOUT_S) -> None:
        """Until each node answers a QoS 1 round trip over MQTT, then until every running node is
        healthy (current with JetStream's meta leader, every stream and consumer it holds current:
        after a node's restart, sessions stall until then), for up to SETTLE_S: a consumer has been
        seen to stay "not current" for a minute while MQTT worked."""
        deadline = time.monotonic() + timeout
        for i in indexes if indexes is not None else range(len(self.nodes)):
            node = self.nodes[i]
            while not (_port_open(node.mqtt_port) and await _mqtt_round_trip(node.mqtt_port)):
                self._check(node, deadline, timeout)
                await asyncio.sleep(0.2)  # polling an external process: there is no event to await
        settled = min(deadline, time.monotonic() + SETTLE_S)
        for i, node in enumerate(self.nodes):
            while self.running(i) and time.monotonic() < settled:
                if await asyncio.to_thread(_healthy, node.monitor_port):
                    break
                self._check(node, deadline, timeout)
                await asyncio.sleep(0.2)

    def _check(self, node: Node, deadline: float, timeout: float) -> None:
        if node.proc is not None and node.proc.poll() is not None:
            raise BrokerError(f"nats-server {node.name} exited; see {node.log}{_tail(node.log)}")
        if time.monotonic() > deadline:
            why = f"not ready in {timeout:.0f} s"
            raise BrokerError(f"nats-server {node.name} {why}; see {node.log}{_tail(node.log)}")

    async def start(self) -> None:
        """Start every node that is not running, all at once (a node alone has no JetStream quorum
        and serves no MQTT session), and return once all serve; on failure, stop them all."""
        for i, node in enumerate(self.nodes):
            if not self.running(i):
                self._spawn(node)
        try:
            await self.wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def kill(self, index: int) -> None:
        """SIGKILL one node (no goodbye to its clients or its peers)."""
        proc = self.nodes[index].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)

    async def restart(self, index: int) -> None:
        """Start a stopped node again on the same ports and store; returns once it serves MQTT."""
        await self.kill(index)
        self._spawn(self.nodes[index])
        await self.wait_ready([index])

    async def stop(self) -> None:
        procs = [n.proc for n in self.nodes if n.proc is not None]
        for node in self.nodes:
            node.proc = None
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            await asyncio.to_thread(_reap, proc)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _tail(log: Path, lines: int = 6) -> str:
    try:
        last = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join("\n  " + line for line in last)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def run_cluster(size: int, workdir: Path | None = None) -> None:
    """`hugbutton broker --cluster N`: run N nodes on loopback, print the --broker value, until Ctrl-C."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hugbutton-nats-") as tmp:
        async with NatsCluster(workdir or Path(tmp), size) as cluster:
            print(f"Hug Button NATS cluster: {size} node(s) on loopback (Ctrl-C to stop)", flush=True)
            print(f"--broker {cluster.url}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):  # stop the nodes too, not only this process
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
