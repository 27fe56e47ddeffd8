"""A stranger with a broker account reads what it may and replays what it saw: it learns no mailbox
id (so it cannot find anyone's inbox), and no replayed presence changes a companion's view or makes it
publish anything (it used to re-send every pending hug per replay: an amplifier)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiomqtt
import pytest
from relaykit import HOST, MosquittoTestBroker, Phone, TestBroker, make_broker, make_circle, run
from testkit import require_tool

from hugapp.core.envelope import acl_lines, presence_topic
from hugapp.core.linking import create_link_code, join_with_code

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def deploy_broker(tmp_path: Path, phones: list[Phone], stranger: str) -> MosquittoTestBroker:
    """Mosquitto with deploy/'s ACL and an account per companion plus the stranger's."""
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user in [p.me.mailbox for p in phones] + [stranger]:
        subprocess.run([require_tool("mosquitto_passwd"), "-b", str(passwd), user, "pw"], check=True)
    acl = tmp_path / "acl"
    acl.write_text(
        (DEPLOY / "acl.example").read_text()
        + "".join(acl_lines(p.me.mailbox, p.me.presence_key) for p in phones)
    )
    conf = f"password_file {passwd}\nacl_file {acl}\n"
    return MosquittoTestBroker(require_tool("mosquitto"), tmp_path, conf, anonymous=False)


@pytest.mark.parametrize("kind", ["mosquitto-deploy", "embedded"])
def test_what_a_stranger_can_read_names_no_one(kind: str, tmp_path: Path) -> None:
    """Two phones link with a code and exchange hugs while a stranger reads every topic its account may
    read ('#' under deploy/'s ACL; on the household broker, which has no ACL, every presence and
    rendezvous topic): no mailbox id, member id or key of anyone appears in a topic or payload."""
    mum, kid = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
    stranger_user = "f" * 32
    broker = (
        deploy_broker(tmp_path, [mum, kid], stranger_user)
        if kind != "embedded"
        else make_broker(kind, tmp_path)
    )
    creds = {p.name: (p.me.mailbox, "pw") if kind != "embedded" else (None, None) for p in (mum, kid)}

    def url(p: Phone) -> str:
        user, pw = creds[p.name]
        return f"mqtt://{user}:{pw}@{HOST}:{broker.port}" if user else f"mqtt://{HOST}:{broker.port}"

    async def main() -> list[tuple[str, bytes]]:
        seen: list[tuple[str, bytes]] = []
        async with broker:
            user = stranger_user if kind != "embedded" else None
            async with aiomqtt.Client(
                HOST, broker.port, username=user, password="pw" if user else None
            ) as eve:
                for f in ("#",) if kind != "embedded" else ("hug/v1/pr/#", "hug/v1/rv/#"):
                    await eve.subscribe(f, qos=1)

                async def watch() -> None:
                    async for m in eve.messages:
                        seen.append((str(m.topic), bytes(m.payload)))  # pyright: ignore[reportArgumentType]

                watcher = asyncio.create_task(watch())
                offer = await create_link_code(mum.store, mum.me, url(mum))
                joined = await join_with_code(offer.code, kid.store, kid.me, url(kid))
                await offer.wait()
                a, b = await mum.start(url(mum)), await kid.start(url(kid))
                sent = [await a.send(joined.link_id, {"n": i}) for i in range(3)]
                await mum.changed.until(lambda: set(sent) <= mum.acked_ids())
                await mum.changed.until(lambda: any(p[1] == kid.member_id and p[2] for p in mum.presence))
                await asyncio.sleep(0.3)
                await mum.stop()
                await kid.stop()
                watcher.cancel()
                del b
        return seen

    seen = run(main(), timeout=60)
    assert any(t.startswith("hug/v1/pr/") for t, _ in seen), "presence is readable by design"
    assert any(t.startswith("hug/v1/rv/") for t, _ in seen), "so is the rendezvous"
    secrets = [x for p in (mum, kid) for x in (p.me.mailbox, p.member_id, p.me.presence_key.hex())]
    leaks = [(t, s) for t, data in seen for s in secrets if s in t or s.encode() in data]
    assert leaks == []
    if kind != "embedded":
        assert not [t for t, _ in seen if t.startswith("hug/v1/in/")], "no inbox is readable"


def test_a_replayed_presence_changes_nothing_and_triggers_nothing(broker: TestBroker, tmp_path: Path) -> None:
    """Gran's phone was online (the stranger recorded her sealed presence), then went away; Mum has five
    hugs waiting for her. Twenty replays of the recorded "online" make Mum publish nothing and leave
    Gran offline in Mum's view."""
    mum, gran = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Gran Rosie")
    link = make_circle(mum, gran)

    async def main() -> None:
        async with broker, aiomqtt.Client(HOST, broker.port, identifier="eve") as eve:
            await eve.subscribe(presence_topic(gran.me.presence_key), qos=1)
            a = await mum.start(broker.url)
            await gran.start(broker.url)
            await mum.changed.until(lambda: (link, gran.member_id, True) in mum.presence)
            recorded = b""
            async with asyncio.timeout(5):
                async for m in eve.messages:
                    recorded = bytes(m.payload)  # pyright: ignore[reportArgumentType]
                    break
            await gran.stop()
            await mum.changed.until(lambda: mum.presence[-1] == (link, gran.member_id, False))
            for i in range(5):
                await a.send(link, {"n": i})
            await mum.changed.until(lambda: a.stats.published >= 5)
            published, views = a.stats.published, list(mum.presence)
            for _ in range(20):
                await eve.publish(presence_topic(gran.me.presence_key), recorded, qos=1)
            await mum.changed.until(lambda: len(mum.rejected) >= 20)
            await asyncio.sleep(0.5)  # any resend would have gone out by now
            assert a.stats.published == published, "a replay made the companion publish"
            assert mum.presence == views
            assert mum.rejected[-20:] == ["replayed"] * 20
            await mum.stop()

    run(main(), timeout=60)
