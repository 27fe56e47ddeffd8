"""A node of the three-node NATS cluster SIGKILLed mid-flight and restarted: the companion on it moves
to another node and resumes its persistent session there; nothing is lost, nothing is handled twice,
delivery resumes within seconds, and presence ends right (online) on both sides."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from relaykit import ClusterTestBroker, Phone, make_circle, run

from hugapp.dev.cluster import NatsCluster

RESUME_BOUND_S = 30.0  # measured ~10 s on 2 loaded cores: JetStream elects new stream/consumer leaders


@pytest.mark.parametrize("victim", ["sender", "recipient"])
def test_node_killed_mid_flight_nothing_lost_nothing_twice(
    nats_cluster: NatsCluster, tmp_path: Path, victim: str
) -> None:
    broker = ClusterTestBroker(nats_cluster)

    async def main() -> None:
        async with broker:
            a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            link = make_circle(a, b)
            ra = await a.start(broker.url_for(0), retry_interval=1.0)  # A on node 0, B on node 1
            rb = await b.start(broker.url_for(1), retry_interval=1.0)
            await a.changed.until(lambda: (link, b.member_id, True) in a.presence)
            sent_a: list[str] = []
            sent_b: list[str] = []
            killed_at: list[float] = []
            after_kill: list[str] = []

            async def traffic() -> None:
                for i in range(30):
                    sent_a.append(await ra.send(link, {"n": i}))
                    sent_b.append(await rb.send(link, {"n": i}))
                    if killed_at and not after_kill:
                        after_kill.append(sent_a[-1])
                    await asyncio.sleep(0.2)

            flow = asyncio.create_task(traffic())
            await a.changed.until(lambda: len(b.received) >= 5)  # mid-flight
            node = 0 if victim == "sender" else 1
            await nats_cluster.kill(node)
            killed_at.append(time.monotonic())
            await asyncio.sleep(3.0)
            await nats_cluster.restart(node)
            await flow
            await b.changed.until(lambda: after_kill[0] in b.handled_counts(), RESUME_BOUND_S)
            resumed_s = time.monotonic() - killed_at[0]
            await b.changed.until(lambda: set(b.handled_counts()) >= set(sent_a), 60)
            await a.changed.until(lambda: set(a.handled_counts()) >= set(sent_b), 60)
            await a.changed.until(lambda: a.acked_ids() >= set(sent_a), 30)
            await b.changed.until(lambda: b.acked_ids() >= set(sent_b), 30)
            await asyncio.sleep(1.0)  # a duplicate would arrive now
            assert b.handled_counts() == dict.fromkeys(sent_a, 1)
            assert a.handled_counts() == dict.fromkeys(sent_b, 1)
            assert len(a.acked) == len(sent_a)
            assert len(b.acked) == len(sent_b)
            assert ra.connected.is_set()
            assert rb.connected.is_set()
            moved = ra if victim == "sender" else rb
            assert moved.stats.connects >= 2
            # presence ends right: each sees the other online
            await a.changed.until(lambda: a.presence[-1] == (link, b.member_id, True))
            await b.changed.until(lambda: b.presence[-1] == (link, a.member_id, True))
            print(f"{victim}'s node killed: delivery resumed after {resumed_s:.1f} s")
            await a.stop()
            await b.stop()

    run(main(), timeout=150)


def test_broker_lists_parse_and_a_dead_first_address_is_skipped(tmp_path: Path) -> None:
    """Relay and linking clients given a list whose first node is down connect to the next one."""
    from hugapp.core.broker import EmbeddedBroker, free_port
    from hugapp.core.envelope import RelayError
    from hugapp.core.linking import create_link_code, join_with_code
    from hugapp.core.relay import parse_broker_urls

    nodes = parse_broker_urls(" mqtt://a:1883, mqtts://u:p@b ,mqtt://c:1884")
    expected = [("a", 1883, False), ("b", 8883, True), ("c", 1884, False)]
    assert [(n.host, n.port, n.tls) for n in nodes] == expected
    assert (nodes[1].username, nodes[1].password) == ("u", "p")
    for bad in ("", " , ", "mqtt://a:1883,http://b"):
        with pytest.raises(RelayError):
            parse_broker_urls(bad)

    async def main() -> None:
        async with EmbeddedBroker("127.0.0.1", 0) as live:
            urls = f"mqtt://127.0.0.1:{free_port()},{live.url}"  # nothing listens on the first
            a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            offer = await create_link_code(a.store, a.me, urls)
            joined = await join_with_code(offer.code, b.store, b.me, urls)
            await offer.wait()
            ra = await a.start(urls)
            await b.start(urls)
            assert ra.address.port == live.port
            sent = await ra.send(joined.link_id, {"n": 1})
            await b.changed.until(lambda: sent in b.handled_counts())
            await a.stop()
            await b.stop()

    run(main())
