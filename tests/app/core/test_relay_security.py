"""What the broker and strangers see and can do: forged, replayed, garbled envelopes are refused with
a logged reason and change nothing; an observer subscribed to '#' sees no plaintext."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import aiomqtt
import pytest
from relaykit import HOST, Phone, TestBroker, make_circle, run

from hugapp.core import relaystore as rs
from hugapp.core.envelope import inbox_topic, seal
from hugapp.core.linking import create_link_code, join_with_code

BROKER_KINDS = ("embedded", "mosquitto", "cluster")  # on the cluster: the two families on two nodes


def test_forged_replayed_garbled_envelopes_are_rejected_and_change_nothing(
    broker: TestBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hugapp.relay")

    async def main() -> None:
        async with broker:
            a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            link = make_circle(a, b)
            circle = rs.link(a.store, link)
            assert circle is not None
            b_inbox = inbox_topic(circle.key, b.member_id, b.me.mailbox)
            a_inbox = inbox_topic(circle.key, a.member_id, a.me.mailbox)
            captured: list[bytes] = []
            async with aiomqtt.Client(HOST, broker.port, identifier="attacker") as raw:
                await raw.subscribe(b_inbox, qos=1)
                ra = await a.start(broker.url)
                await b.start(broker.url)
                sent = await ra.send(link, {"gesture": "tap", "taps": 1})
                await a.changed.until(lambda: sent in a.acked_ids())
                await a.stop()  # no more legitimate traffic from here on
                async with asyncio.timeout(5):
                    async for m in raw.messages:
                        captured.append(bytes(m.payload))  # pyright: ignore[reportArgumentType]
                        break
                genuine = captured[0]
                flipped = bytearray(genuine)
                flipped[20] ^= 0x01
                _, moved = seal(circle.key, a_inbox, a.member_id, "hug", {"gesture": "tap"}, a.clock())
                _, wrong_key = seal(
                    os.urandom(32), b_inbox, a.member_id, "hug", {"gesture": "tap"}, a.clock()
                )
                _, as_self = seal(circle.key, b_inbox, b.member_id, "hug", {"gesture": "tap"}, a.clock())
                stranger = f"hug/v1/in/{b.me.mailbox}/{os.urandom(32).hex()}"
                attacks: list[tuple[str, bytes, str]] = [
                    (b_inbox, genuine, "replayed"),
                    (b_inbox, wrong_key, "forged"),
                    (b_inbox, moved, "forged"),  # sealed for A's inbox, moved to B's
                    (b_inbox, as_self, "forged"),  # claims a sender that is not a member here
                    (b_inbox, bytes(flipped), "forged"),
                    (b_inbox, genuine[:20], "garbled"),
                    (b_inbox, b"\x07" + genuine[1:], "garbled"),
                    (stranger, genuine, "unknown_link"),
                ]
                before_rows, before_received = b.rows(), list(b.received)
                n0 = len(b.rejected)  # legitimate duplicates (re-sends) may already be counted
                caplog.clear()
                for i, (topic, data, _) in enumerate(attacks, start=1):
                    await raw.publish(topic, data, qos=1)
                    await b.changed.until(lambda i=i: len(b.rejected) >= n0 + i)  # type: ignore[misc]
            assert b.rejected[n0:] == [want for _, _, want in attacks]  # every one refused and counted
            # logged once per reason and minute, not once per envelope (a flood must not flood the log)
            reasons = [getattr(r, "reason", None) for r in caplog.records if hasattr(r, "reason")]
            assert len(reasons) == len(set(reasons)), reasons
            assert {"forged", "garbled", "unknown_link"} <= set(reasons) <= {want for _, _, want in attacks}
            assert b.received == before_received
            assert len(b.received) == 1
            assert b.rows() == before_rows
            assert len(a.acked) == 1
            await b.stop()

    run(main())


def test_an_observer_of_everything_sees_no_plaintext(broker: TestBroker, tmp_path: Path) -> None:
    async def main() -> None:
        async with broker:
            seen: list[tuple[str, bytes]] = []
            async with aiomqtt.Client(HOST, broker.port, identifier="observer") as observer:
                await observer.subscribe("#", qos=1)

                ended = asyncio.Event()

                async def watch() -> None:
                    async for m in observer.messages:
                        seen.append((m.topic.value, bytes(m.payload)))  # pyright: ignore[reportArgumentType]
                        if m.topic.value == "observer/marker":
                            ended.set()

                watcher = asyncio.create_task(watch())
                mum, kid = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
                offer = await create_link_code(mum.store, mum.me, broker.url, circle_name="Smith family")
                joined = await join_with_code(offer.code, kid.store, kid.me, broker.url)
                await offer.wait()
                link = joined.link_id
                ra, rk = await mum.start(broker.url), await kid.start(broker.url)
                hug = await ra.send(link, {"gesture": "squeeze", "intensity": 3, "from_name": "Mum Alice"})
                await kid.changed.until(lambda: len(kid.received) == 1)
                back = await rk.send(link, {"gesture": "tap", "taps": 2, "hug_back_of": hug})
                await kid.changed.until(lambda: back in kid.acked_ids())
                await mum.changed.until(lambda: hug in mum.acked_ids())
                await mum.stop()
                await kid.stop()
                await observer.publish("observer/marker", b"end", qos=1)
                async with asyncio.timeout(5):
                    await ended.wait()
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            circle = rs.link(mum.store, link)
            assert circle is not None
            secrets_: list[bytes] = []
            for text in (
                "Mum Alice",
                "Kid Bobby",
                "Alice",
                "Bobby",
                "Smith",
                "squeeze",
                "gesture",
                "taps",
                "intensity",
                "hug_back",
                "from_name",
            ):
                secrets_ += [text.encode(), text.lower().encode(), text.upper().encode()]
            for hexid in (mum.member_id, kid.member_id, link, hug, back):
                secrets_ += [hexid.encode(), hexid.upper().encode(), bytes.fromhex(hexid)]
            for key in (circle.key, mum.me.presence_key, kid.me.presence_key):
                secrets_ += [key, key.hex().encode()]
            traffic = [(t, p) for t, p in seen if t != "observer/marker"]
            topics = {t for t, _ in traffic}
            assert len(traffic) >= 8  # rendezvous, presence, two hugs, two acks at least
            assert any(t.startswith("hug/v1/in/") for t in topics)
            assert any(t.startswith("hug/v1/rv/") for t in topics)
            for topic, payload in traffic:
                for s in secrets_:
                    assert s not in topic.encode(), (topic, s)
                    assert s not in payload, (topic, s)

    run(main())
