"""Relay tests run against three brokers: the embedded one (amqtt, in-process), a real Mosquitto, and
a three-node NATS cluster (JetStream R3, MQTT on each node), both started on free loopback ports
(skipped if the program is missing; a failure under HUG_STRICT=1). The cluster is started once per
session and shared; tests that kill a node leave `ClusterTestBroker.start()` to bring it back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from relaykit import TestBroker, make_broker
from testkit import require_tool

from hugapp.dev.cluster import NatsCluster


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"), 3, exe=require_tool("nats-server"))
    asyncio.run(cluster.start())
    try:
        yield cluster
    finally:
        asyncio.run(cluster.stop())


@pytest.fixture(params=["embedded", "mosquitto", "cluster"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> TestBroker:
    """An unstarted broker; a test starts it inside its own event loop with `async with broker:`."""
    kind = str(request.param)
    cluster = request.getfixturevalue("nats_cluster") if kind == "cluster" else None
    return make_broker(kind, tmp_path, cluster)
