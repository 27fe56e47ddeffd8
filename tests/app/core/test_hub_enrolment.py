"""The classroom hub's enrolment and tunnel (hugapp.core.hub, hugapp.core.hubtunnel), without bands:
what the hub learns at enrolment, what a tunnel message must be to be accepted, and a hub keeping
thirty families apart."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from pathlib import Path

import aiomqtt
import pytest
from bleak.exc import BleakError
from relaykit import FakeClock, MosquittoTestBroker, TestBroker, run
from testkit import require_tool

from hugapp import cli
from hugapp.core import hubtunnel
from hugapp.core.bandlink import BleConfig
from hugapp.core.broker import free_port
from hugapp.core.envelope import Forged, Garbled, Replayed
from hugapp.core.hub import Hub, HubStore, enrol_at_hub, offer_enrolment
from hugapp.core.hubtunnel import DOWN, UP, HubTunnel, Tunnel
from hugapp.core.linking import CodeNotFound, create_link_code, join_with_code
from hugapp.core.relaystore import Identity, ensure_identity
from hugapp.core.store import Store, StoreError
from hugproto import adv
from hugsim.airspace import Airspace
from hugsim.phone.bleak_backend import airspace_backend

BAND_ID = "b0b0b0b0b0b0"


def _owner(tmp: Path) -> tuple[Store, bytes]:
    store = Store(tmp / "owner.sqlite3")
    key = os.urandom(16)
    store.save_band(BAND_ID, "Mia's band", key)
    return store, key


# ------------------------------------------------------------------------------------- enrolment


def test_enrolment_gives_the_hub_only_the_identity_key(broker: TestBroker, tmp_path: Path) -> None:
    store, band_key = _owner(tmp_path)
    hub_store = HubStore(tmp_path / "hub")

    async def scenario() -> None:
        async with broker:
            offer = await offer_enrolment(hub_store, broker.url)
            enrolment_id = await enrol_at_hub(
                offer.code.lower().replace("-", " "), store, BAND_ID, broker.url
            )
            enrolment = await offer.wait()
            assert enrolment.enrolment_id == enrolment_id
            assert enrolment.identity_key == adv.identity_key(band_key)
            assert store.band_hub(BAND_ID) == (enrolment_id, enrolment.tunnel_key)

    run(scenario())
    assert [e.enrolment_id for e in hub_store.enrolments()] == [store.band_hub(BAND_ID)[0]]  # type: ignore[index]
    hub_store.close()
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "hub").iterdir())
    assert band_key not in on_disk, "the hub never holds the band key"


def test_codes_of_hub_and_linking_meet_nowhere(broker: TestBroker, tmp_path: Path) -> None:
    """A hub's code typed where a phone's link code goes (and the reverse) reaches no offer."""
    store, _ = _owner(tmp_path)
    hub_store = HubStore(tmp_path / "hub")
    me: Identity = ensure_identity(store, "Mum")

    async def scenario() -> None:
        async with broker:
            hub_offer = await offer_enrolment(hub_store, broker.url)
            with pytest.raises(CodeNotFound):
                await join_with_code(
                    hub_offer.code, Store(tmp_path / "other.sqlite3"), me, broker.url, timeout=2
                )
            link_offer = await create_link_code(store, me, broker.url)
            with pytest.raises(CodeNotFound):
                await enrol_at_hub(link_offer.code, store, BAND_ID, broker.url, timeout=2)
            await hub_offer.cancel()
            await link_offer.cancel()

    run(scenario())
    assert hub_store.enrolments() == []
    assert store.band_hub(BAND_ID) is None


def test_enrolling_a_band_this_phone_does_not_have_changes_nothing(tmp_path: Path) -> None:
    store, _ = _owner(tmp_path)
    with pytest.raises(StoreError):
        asyncio.run(enrol_at_hub("K7PM-4Q2X", store, "not-a-band", "mqtt://127.0.0.1:1"))
    assert store.band_hub(BAND_ID) is None


def test_the_operator_lists_and_removes_bands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub_store = HubStore(tmp_path / "hub")
    e = hub_store.add(secrets.token_bytes(32), secrets.token_bytes(16))
    hub_store.close()
    data = str(tmp_path / "hub")
    assert cli.main(["hub", "--data", data, "list"]) == 0
    assert capsys.readouterr().out.split() == [e.enrolment_id]
    assert cli.main(["hub", "--data", data, "remove", "nope"]) == 1
    assert cli.main(["hub", "--data", data, "remove", e.enrolment_id]) == 0
    assert cli.main(["hub", "--data", data, "list"]) == 0
    assert capsys.readouterr().out.split() == []


def test_enrol_with_no_broker_answering_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"mqtt://hub:s3cret@127.0.0.1:{free_port()}"  # nothing listens there
    assert cli.main(["hub", "--data", str(tmp_path / "hub"), "--broker", url, "enrol"]) == 2
    err = capsys.readouterr().err
    assert "can't reach the broker (127.0.0.1:" in err, err
    assert "s3cret" not in err, err
    assert "Traceback" not in err, err
    hub_store = HubStore(tmp_path / "hub")
    assert hub_store.enrolments() == []
    hub_store.close()


def test_the_operator_names_the_hub_and_each_owner_learns_the_name(
    broker: TestBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hugbutton hub name "Class 2"`; an owner enrolling then stores the name for the parent's words.
    A name that is not one (too long, control characters) is refused at the hub; from a hostile hub
    that wrote it anyway, the owner keeps no name and the enrolment still stands."""
    data = str(tmp_path / "hub")
    assert cli.main(["hub", "--data", data, "name"]) == 0
    assert "no name" in capsys.readouterr().out
    assert cli.main(["hub", "--data", data, "name", "x" * 41]) == 2
    assert cli.main(["hub", "--data", data, "name", "Class\x1b[2J 2"]) == 2
    assert "printable" in capsys.readouterr().err
    assert cli.main(["hub", "--data", data, "name", " Class 2 "]) == 0
    assert capsys.readouterr().out.strip() == "Class 2"
    store, _ = _owner(tmp_path)
    hub_store = HubStore(data)

    async def enrol() -> str:
        offer = await offer_enrolment(hub_store, broker.url)
        enrolment = await enrol_at_hub(offer.code, store, BAND_ID, broker.url)
        await offer.wait()
        return enrolment

    async def scenario() -> None:
        async with broker:
            await enrol()
            assert store.band_hub_name(BAND_ID) == "Class 2"
            for hostile in ("\x1b[2J\x07", "Class 2" * 40):  # written past the hub's own check
                hub_store.db.execute("UPDATE settings SET value = ? WHERE key = 'name'", (hostile,))
                enrolment = await enrol()
                assert store.band_hub(BAND_ID) is not None
                assert store.band_hub(BAND_ID)[0] == enrolment  # type: ignore[index]
                assert store.band_hub_name(BAND_ID) == ""

    run(scenario())
    hub_store.close()


# ----------------------------------------------------------------------------------------- tunnel


def _pair(clock: FakeClock) -> tuple[Tunnel, Tunnel]:
    key = secrets.token_bytes(32)
    return Tunnel(key, DOWN, clock), Tunnel(key, UP, clock)


def test_tunnel_messages_open_once_on_the_other_side_only() -> None:
    clock = FakeClock()
    owner, hub = _pair(clock)
    data = owner.seal({"t": "ping", "i": "1", "l": "x"})
    assert hub.open(data)["t"] == "ping"
    with pytest.raises(Replayed):
        hub.open(data)  # the broker delivers it again
    with pytest.raises(Forged):
        owner.open(owner.seal({"t": "ping"}))  # one's own message is no message from the other side
    flipped = bytearray(owner.seal({"t": "ping"}))
    flipped[-1] ^= 1
    with pytest.raises(Forged):
        hub.open(bytes(flipped))
    with pytest.raises(Forged):
        Tunnel(secrets.token_bytes(32), UP, clock).open(owner.seal({"t": "ping"}))
    with pytest.raises(Garbled):
        hub.open(b"\x01short")
    with pytest.raises(Garbled):
        hub.open(b"\x01" + bytes(hubtunnel.MAX_MESSAGE + 1))


def test_a_stale_tunnel_message_is_dropped() -> None:
    clock = FakeClock()
    owner, hub = _pair(clock)
    data = owner.seal({"t": "write", "i": "1"})
    clock.advance(hubtunnel.MAX_AGE_S + 1)
    with pytest.raises(Replayed):
        hub.open(data)


def test_tunnel_topics_name_no_one() -> None:
    key = secrets.token_bytes(32)
    down, up = hubtunnel.topic(key, DOWN), hubtunnel.topic(key, UP)
    assert down != up
    for t in (down, up):
        assert t.startswith("hug/v1/hub/")
        assert len(t.rsplit("/", 1)[1]) == 64
        assert key.hex() not in t
    assert hubtunnel.topic(secrets.token_bytes(32), DOWN) != down


def test_one_hub_serves_thirty_families_apart(broker: TestBroker, tmp_path: Path) -> None:
    """30 enrolments: each owner's requests reach the hub and its answers reach that owner only; a
    message moved to another family's topic opens nowhere; one family leaving leaves the others."""
    hub_store = HubStore(tmp_path / "hub")
    keys = [secrets.token_bytes(32) for _ in range(30)]
    for k in keys:
        hub_store.add(k, secrets.token_bytes(16))

    async def scenario() -> None:
        async with broker, Airspace() as air:
            hub = Hub(hub_store, broker.url, BleConfig(*airspace_backend(air.address, "hub")))
            tasks = [asyncio.ensure_future(hub.run())]
            tunnels = [HubTunnel(broker.url, k, rpc_timeout=5) for k in keys]
            tasks += [asyncio.ensure_future(t.run()) for t in tunnels]
            try:
                await asyncio.wait_for(hub.online.wait(), 10)
                for t in tunnels:
                    await asyncio.wait_for(t.online.wait(), 10)

                async def no_link(t: HubTunnel) -> str:
                    with pytest.raises(BleakError) as caught:
                        await t.request("ping", l="nope")
                    return str(caught.value)

                answers = await asyncio.gather(*(no_link(t) for t in tunnels))
                assert answers == ["the hub: no such link"] * 30
                assert hub.stats.requests == 30

                moved = tunnels[0].tunnel.seal({"t": "ping", "i": "x", "l": "nope"})
                await publish_raw(broker, tunnels[1].tunnel.out_topic, moved)
                await asyncio.sleep(0.5)
                assert hub.stats.rejected == 1

                await tunnels[0].request("bye")
                assert len(hub_store.enrolments()) == 29
                assert await no_link(tunnels[1]) == "the hub: no such link"
                assert "did not answer" in await no_link(tunnels[0])
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    run(scenario(), 90)
    hub_store.close()


async def publish_raw(broker: TestBroker, topic: str, data: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="mover") as client:
        await client.publish(topic, data, qos=1)


def test_enrolment_and_tunnel_work_under_the_deployed_acl(tmp_path: Path) -> None:
    """deploy/acl.example on a real Mosquitto: a hub account and an owner's account enrol by code and
    reach each other through the tunnel."""
    exe, passwd_tool = require_tool("mosquitto"), require_tool("mosquitto_passwd")
    passwd = tmp_path / "passwd"
    passwd.touch()
    users = {"hub": secrets.token_hex(16), "owner": secrets.token_hex(16)}
    for name, mailbox in users.items():
        subprocess.run([passwd_tool, "-b", str(passwd), mailbox, name + "-secret"], check=True)
    acl = tmp_path / "acl"
    acl.write_text((Path(__file__).resolve().parents[3] / "deploy" / "acl.example").read_text())
    broker = MosquittoTestBroker(exe, tmp_path, f"password_file {passwd}\nacl_file {acl}\n", anonymous=False)
    store, _ = _owner(tmp_path)
    hub_store = HubStore(tmp_path / "hub")

    def url(name: str) -> str:
        return f"mqtt://{users[name]}:{name}-secret@127.0.0.1:{broker.port}"

    async def scenario() -> None:
        async with broker, Airspace() as air:
            offer = await offer_enrolment(hub_store, url("hub"))
            await enrol_at_hub(offer.code, store, BAND_ID, url("owner"))
            await offer.wait()
            hub_entry = store.band_hub(BAND_ID)
            assert hub_entry is not None
            hub = Hub(hub_store, url("hub"), BleConfig(*airspace_backend(air.address, "hub")))
            tunnel = HubTunnel(url("owner"), hub_entry[1], rpc_timeout=5)
            tasks = [asyncio.ensure_future(hub.run()), asyncio.ensure_future(tunnel.run())]
            try:
                await asyncio.wait_for(tunnel.online.wait(), 10)
                await asyncio.wait_for(hub.online.wait(), 10)
                with pytest.raises(BleakError, match="no such link"):
                    await tunnel.request("ping", l="nope")  # it went there and came back
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    run(scenario(), 60)
    hub_store.close()
