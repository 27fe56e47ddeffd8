"""Relay delivery, exactly once, through every broker kind (the two phones on different nodes of the
cluster): online, partner offline for an hour, broker restart, companion restart (in-process and
SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from relaykit import TEST_TIMEOUT, FakeClock, Phone, TestBroker, make_broker, make_circle, run

from hugapp.core import relaystore as rs
from hugapp.core.relay import Relay

BROKER_KINDS = ("embedded", "mosquitto", "cluster")  # on the cluster: the two families on two nodes

CHILD = Path(__file__).with_name("child_sender.py")


def test_twenty_messages_each_delivered_once_and_acked(broker: TestBroker, tmp_path: Path) -> None:
    async def main() -> None:
        async with broker:
            a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            link = make_circle(a, b)
            await a.start(broker.url)
            await b.start(broker.url_for(1))
            assert a.relay is not None
            sent = [await a.relay.send(link, {"n": i}, to=b.member_id) for i in range(20)]
            await b.changed.until(lambda: len(b.received) >= 20)
            await a.changed.until(lambda: a.acked_ids() >= set(sent))
            assert a.acked_ids() == set(sent)
            assert all(by == b.member_id for _, by in a.acked)
            assert len(a.acked) == 20  # the delivered receipt fires once per message
            assert b.handled_counts() == dict.fromkeys(sent, 1)
            assert sorted(m.payload["n"] for m in b.received) == list(range(20))
            assert {m.sender for m in b.received} == {a.member_id}
            assert rs.outbox_pending(a.store) == []
            assert rs.seen_count(b.store) == 20
            await a.stop()
            await b.stop()

    run(main())


def test_partner_offline_for_an_hour_then_back(broker: TestBroker, tmp_path: Path) -> None:
    clock = FakeClock()

    async def main() -> None:
        async with broker:
            a = Phone(tmp_path, "Mum Alice", clock)
            b = Phone(tmp_path, "Kid Bobby", clock)
            link = make_circle(a, b)
            await a.start(broker.url, retry_interval=600.0)
            await b.start(broker.url_for(1))  # B has been online (a persistent session exists)...
            await a.changed.until(lambda: (link, b.member_id, True) in a.presence)
            await b.stop()  # ...and goes away
            await a.changed.until(lambda: a.presence[-1] == (link, b.member_id, False))
            assert a.relay is not None
            sent = [await a.relay.send(link, {"n": i}) for i in range(5)]
            await a.changed.until(lambda: all(i.attempts == 1 for i in rs.outbox_pending(a.store)))
            clock.advance(3600)  # an hour: the outbox timer (injected clock) re-publishes, still unheard
            await a.changed.until(lambda: all(i.attempts >= 2 for i in rs.outbox_pending(a.store)))
            assert len(rs.outbox_pending(a.store)) == 5
            assert a.acked == []
            b2 = Phone(tmp_path, "Kid Bobby", clock)  # the same store file, a new relay
            assert b2.member_id == b.member_id
            assert b.received == []
            await b2.start(broker.url_for(1))
            await b2.changed.until(lambda: len(b2.received) >= 5)
            await a.changed.until(lambda: a.acked_ids() >= set(sent))
            assert b2.handled_counts() == dict.fromkeys(sent, 1)
            assert len(a.acked) == 5
            assert rs.outbox_pending(a.store) == []
            await a.stop()
            await b2.stop()

    run(main())


def test_broker_restart_mid_flight(broker: TestBroker, tmp_path: Path) -> None:
    async def main() -> None:
        async with broker:
            a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            link = make_circle(a, b)
            ra = await a.start(broker.url, retry_interval=1.0)
            rb = await b.start(broker.url_for(1))
            sent = [await ra.send(link, {"n": i}) for i in range(10)]
            await broker.restart()  # whatever was in flight may be lost
            sent += [await ra.send(link, {"n": i}) for i in range(10, 20)]
            await b.changed.until(lambda: set(b.handled_counts()) >= set(sent), timeout=20)
            await a.changed.until(lambda: a.acked_ids() >= set(sent), timeout=20)
            assert b.handled_counts() == dict.fromkeys(sent, 1)
            assert len(a.acked) == 20
            assert ra.stats.connects >= 2
            assert rb.stats.connects >= 2
            await a.stop()
            await b.stop()

    run(main(), TEST_TIMEOUT + broker.restart_s)


def test_a_hug_stored_while_the_broker_is_away_cuts_the_backoff_short(tmp_path: Path) -> None:
    """A relay long without its broker waits longer and longer between tries (here up to 60 s); a hug
    stored once the broker is back is tried within `reconnect_min`, not at the end of that wait."""

    async def main() -> None:
        broker = make_broker("embedded", tmp_path)  # the backoff is the relay's, whatever the broker
        async with broker:
            a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            link = make_circle(a, b)
            ra = await a.start(broker.url, reconnect_min=0.1, reconnect_max=60.0)
            await b.start(broker.url, reconnect_min=0.1, reconnect_max=0.1)
            await broker.stop()
            # waits of 0.1, 0.2, ... 6.4 s after failed tries: after the eighth, 12.8 s (at least 10.2)
            while ra.stats.attempts < 8:  # noqa: ASYNC110 - a counter, no event
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the eighth is refused
            await broker.start()
            assert b.relay is not None
            async with asyncio.timeout(10):
                await b.relay.connected.wait()
            assert not ra.connected.is_set(), "Alice's relay is still in its long wait"
            t_sent = time.monotonic()
            msg = await ra.send(link, {"n": 1})
            await b.changed.until(lambda: msg in b.handled_counts(), timeout=20)
            assert time.monotonic() - t_sent < 5.0, "the hug waited out the backoff"
            assert ra.stats.attempts == 9
            await a.changed.until(lambda: msg in a.acked_ids())
            await a.stop()
            await b.stop()

    run(main(), 60)


def test_companion_restarted_after_storing_before_publishing(broker: TestBroker, tmp_path: Path) -> None:
    async def main() -> None:
        async with broker:
            a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            link = make_circle(a, b)
            await b.start(broker.url_for(1))
            relay = a.make_relay(broker.url)  # never run: stored, not published (a cancelled companion)
            sent = [await relay.send(link, {"n": i}) for i in range(3)]
            assert [i.attempts for i in rs.outbox_pending(a.store)] == [0, 0, 0]
            a.store.close()
            a2 = Phone(tmp_path, "Mum Alice")
            await a2.start(broker.url)
            await b.changed.until(lambda: len(b.received) >= 3)
            await a2.changed.until(lambda: a2.acked_ids() >= set(sent))
            assert b.handled_counts() == dict.fromkeys(sent, 1)
            await a2.stop()
            await b.stop()

    run(main())


def test_companion_sigkilled_between_publish_and_ack(broker: TestBroker, tmp_path: Path) -> None:
    async def main() -> None:
        async with broker:
            a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            link = make_circle(a, b)
            gate = asyncio.Event()
            held: list[str] = []

            async def slow_handler(m: object) -> None:  # B got it but has not acknowledged yet
                held.append(getattr(m, "msg_id", ""))
                b.changed.notify()
                await gate.wait()
                await Phone._on_message(b, m)  # pyright: ignore[reportPrivateUsage, reportArgumentType]

            rb = b.make_relay(broker.url_for(1))
            rb.on_message = slow_handler  # type: ignore[assignment]
            b_task = asyncio.create_task(rb.run())
            await rb.connected.wait()
            a.store.close()
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
            child = await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, str(CHILD), str(a.db_path), broker.url, link, "4"],
                stdout=subprocess.PIPE,
                env=env,
            )
            assert child.stdout is not None
            line = await asyncio.to_thread(child.stdout.readline)
            assert line.strip() == b"PUBLISHED", line
            await b.changed.until(lambda: len(held) >= 1)
            child.send_signal(signal.SIGKILL)  # A dies with every message published, none acknowledged
            await asyncio.to_thread(child.wait)
            gate.set()
            a2 = Phone(tmp_path, "Mum Alice")
            sent = [i.msg_id for i in rs.outbox_items(a2.store)]
            assert len(sent) == 4
            assert a2.acked == []
            await a2.start(broker.url)
            await b.changed.until(lambda: set(b.handled_counts()) >= set(sent))
            await a2.changed.until(lambda: a2.acked_ids() >= set(sent))
            assert b.handled_counts() == dict.fromkeys(sent, 1)
            assert len(a2.acked) == 4
            await a2.stop()
            b_task.cancel()
            try:
                await b_task
            except asyncio.CancelledError:
                pass

    run(main())


def test_a_presence_subscribed_in_an_earlier_session_is_let_go_not_rejected(
    broker: TestBroker, tmp_path: Path
) -> None:
    """Mum's phone leaves the circle while its app is closed; the broker's persistent session still
    holds its subscription to Kid's presence. When Kid's presence changes, Mum's relay unsubscribes
    quietly: nothing is counted or shown as junk, and (Mosquitto, NATS) Kid's next change no longer
    reaches it."""

    async def let_go(relay: Relay, n: int) -> None:
        async with asyncio.timeout(15):
            while relay.stats.presence_let_go < n:  # noqa: ASYNC110 - a counter, no event
                await asyncio.sleep(0.05)

    async def main() -> None:
        async with broker:
            a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            link = make_circle(a, b)
            await a.start(broker.url)
            await b.start(broker.url_for(1))
            await a.changed.until(lambda: (link, b.member_id, True) in a.presence)
            await a.stop()
            with a.store.transaction() as db:
                rs.drop_link(db, link)
            ra = await a.start(broker.url)
            seen = len(a.presence)
            await b.stop()  # Kid's "offline", on the topic Mum's earlier session subscribed to
            await let_go(ra, 1)
            received = ra.stats.received
            await b.start(broker.url_for(1))
            await asyncio.sleep(2.0)  # Kid's "online" would have reached Mum by now
            if broker.kind == "embedded":  # amqtt keeps delivering an earlier session's subscription
                assert ra.stats.presence_let_go == ra.stats.received  # after UNSUBACK: let go each time
            else:
                assert ra.stats.received == received
                assert ra.stats.presence_let_go == 1
            assert ra.stats.rejected == {}
            assert a.rejected == []
            assert len(a.presence) == seen
            await a.stop()
            await b.stop()

    run(main())
