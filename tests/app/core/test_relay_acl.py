"""deploy/'s Mosquitto ACL, on a real Mosquitto (test-local listener without TLS, two users): a
companion reads only its own inboxes, never another member's inbox or '#', and the relay works."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiomqtt
from relaykit import HOST, MosquittoTestBroker, Phone, make_circle, run
from testkit import require_tool

from hugapp.core import relaystore as rs
from hugapp.core.envelope import acl_lines, inbox_topic, presence_topic


def _code(x: object) -> int:
    return int(getattr(x, "value", x))  # pyright: ignore[reportArgumentType]


DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def test_acl_keeps_each_companion_to_its_own_inbox(tmp_path: Path) -> None:
    exe = require_tool("mosquitto")
    passwd_tool = require_tool("mosquitto_passwd")
    a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
    link = make_circle(a, b)
    passwd = tmp_path / "passwd"
    passwd.touch()
    for phone, secret in ((a, "alice-secret"), (b, "bobby-secret")):
        subprocess.run([passwd_tool, "-b", str(passwd), phone.me.mailbox, secret], check=True)
    acl = tmp_path / "acl"
    acl.write_text(
        (DEPLOY / "acl.example").read_text()
        + "".join(acl_lines(p.me.mailbox, p.me.presence_key) for p in (a, b))
    )
    conf = DEPLOY / "mosquitto.conf"
    assert "allow_anonymous false" in conf.read_text()
    assert "acl_file" in conf.read_text()
    broker = MosquittoTestBroker(exe, tmp_path, f"password_file {passwd}\nacl_file {acl}\n", anonymous=False)
    circle = rs.link(a.store, link)
    assert circle is not None
    a_inbox = inbox_topic(circle.key, a.member_id, a.me.mailbox)
    b_inbox = inbox_topic(circle.key, b.member_id, b.me.mailbox)

    async def main() -> None:
        async with broker:
            alice = aiomqtt.Client(
                HOST, broker.port, username=a.me.mailbox, password="alice-secret", identifier="snoop"
            )
            bobby = aiomqtt.Client(
                HOST, broker.port, username=b.me.mailbox, password="bobby-secret", identifier="bobby-raw"
            )
            async with alice, bobby:
                own = await alice.subscribe(a_inbox, qos=1)
                others = await alice.subscribe(b_inbox, qos=1)
                everything = await alice.subscribe("#", qos=1)
                wide = await alice.subscribe("hug/v1/in/#", qos=1)
                # Mosquitto 2.0 may grant a denied subscription and then deliver nothing through it
                # (newer versions answer 0x80): either way nothing of another inbox may arrive.
                assert _code(own[0]) < 0x80
                print("suback codes (others, #, wide):", [_code(x[0]) for x in (others, everything, wide)])
                await bobby.publish(b_inbox, b"for bobby only", qos=1)
                await bobby.publish(presence_topic(b.me.presence_key), b"presence", qos=1)
                await bobby.publish(a_inbox, b"for alice", qos=1)  # same publisher: delivered in order
                got: list[tuple[str, bytes]] = []
                async with asyncio.timeout(5):
                    async for m in alice.messages:
                        got.append((m.topic.value, bytes(m.payload)))  # pyright: ignore[reportArgumentType]
                        if m.topic.value == a_inbox:
                            break
                # nothing of bobby's inbox (presence is readable by design: sealed, see acl.example)
                assert [g for g in got if g[0].startswith("hug/v1/in/")] == [(a_inbox, b"for alice")]
                # and alice cannot write into bobby's presence (only her own)
                await bobby.subscribe(presence_topic(b.me.presence_key), qos=1)
                await bobby.subscribe(b_inbox, qos=1)
                await alice.publish(presence_topic(b.me.presence_key), b"fake presence", qos=1)  # PUBACKed
                await bobby.publish(b_inbox, b"marker", qos=1)
                async with asyncio.timeout(5):
                    async for m in bobby.messages:
                        assert m.payload != b"fake presence"
                        if m.payload == b"marker":
                            break
            # the relay itself works under these ACLs, with credentials in the broker URL
            port = broker.port
            await a.start(f"mqtt://{a.me.mailbox}:alice-secret@{HOST}:{port}")
            await b.start(f"mqtt://{b.me.mailbox}:bobby-secret@{HOST}:{port}")
            assert a.relay is not None
            sent = await a.relay.send(link, {"n": 1})
            await b.changed.until(lambda: len(b.received) == 1)
            await a.changed.until(lambda: sent in a.acked_ids())
            await a.changed.until(lambda: (link, b.member_id, True) in a.presence)
            await a.stop()
            await b.stop()

    run(main())
