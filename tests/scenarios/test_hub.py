"""A band at school, served by the classroom hub: the owner's phone is out of the band's range, the hub
in it. The owner's unchanged BandLink reaches the band through the hub's sealed tunnel: a press
reaches the owner once, a Play buzzes the band once, and a hub restarted mid-way loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from hubkit import PAIR_HOLD_MS, TAP_MS, BrokerSniffer, HubProcess, enrol_shows, pulses, school
from relaykit import TestBroker, run

from hugapp.core.bandlink import LinkState
from hugapp.core.companion import Companion
from hugapp.core.hub import OWNER_SILENT_S, RELOAD_S, Hub, HubStore, leave_hub, offer_enrolment
from hugapp.core.hubtunnel import PING_S, HubTunnel
from hugapp.core.notify import DesktopNotifier
from hugapp.dev.school import School
from hugapp.dev.world import open_world
from hugapp.hubcli import status_words
from hugproto import patterns
from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.process import BandProcess

BROKER_KINDS = ["mosquitto"]


def test_press_and_play_through_the_hub(broker: TestBroker, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with school(tmp_path, broker) as s, contextlib.AsyncExitStack() as stack:
            sniffer = await stack.enter_async_context(BrokerSniffer(broker))
            link = await s.at_school()
            assert link.battery is not None  # the AuthOk came back through the hub
            await s.control.hold(s.band.address, TAP_MS)
            await s.until(lambda: len(s.pressed) == 1)
            before = await s.motor_runs()
            token = await link.play(patterns.HUG, 1, 255, 1)
            await s.until(lambda: token in s.felt)
            await asyncio.sleep(1.0)  # anything repeated would have arrived
            once = pulses(patterns.HUG, 1, 255, 1)
            assert await s.motor_runs() == before + once, "the Play buzzed the band once"
            assert s.felt == [token]
            assert len(s.store.presses(s.band_id)) == 1
            assert len(s.pressed) == 1
            assert s.hub is not None
            assert s.hub.stats.rejected == 0
            on_air = [bytes.fromhex(e["value"]) for e in await s.control.recording() if e.get("value")]
            assert_sealed(sniffer.seen, [v for v in on_air if len(v) >= 8], s.store.band(s.band_id).key)
            assert s.tunnel is not None
            await leave_hub(s.store, s.band_id, s.tunnel)  # the parent removes the band from the hub
            assert s.store.band_hub(s.band_id) is None
            assert s.hub_store.enrolments() == []
            await s.until(lambda: link.state is not LinkState.CONNECTED, 15)

    run(scenario(), 150)


def assert_sealed(published: list[tuple[str, bytes]], frames_on_air: list[bytes], band_key: bytes) -> None:
    """The broker saw the code exchange and two tunnel topics, every message sealed: no band frame,
    no band key, in clear or in hex."""
    assert frames_on_air
    topics = {t for t, _ in published}
    assert {t.split("/")[2] for t in topics} == {"rv", "hub"}
    assert len([t for t in topics if t.startswith("hug/v1/hub/")]) == 2
    for t, payload in published:
        if t.startswith("hug/v1/hub/"):
            assert payload == b"" or payload[0] == 1  # a session's probe, or an envelope
        for secret in (band_key, *frames_on_air):
            assert secret not in payload
            assert secret.hex().encode() not in payload


def test_a_link_its_owner_stopped_asking_about_is_let_go(broker: TestBroker, tmp_path: Path) -> None:
    """The owner's link through the hub is up (authenticated: the band keeps it) when the owner goes
    silent without a word (its phone died, or lost the broker): the hub lets the link go, so the band
    advertises again and its owner reaches it later."""

    async def scenario() -> None:
        async with school(tmp_path, broker) as s:
            await s.pair_and_leave()
            hub = s.start_hub()
            await s.enrol()
            enrolled = s.store.band_hub(s.band_id)
            assert enrolled is not None
            tunnel = HubTunnel(broker.url, enrolled[1])
            tunnel_task = asyncio.ensure_future(tunnel.run())
            await asyncio.wait_for(tunnel.online.wait(), 10)
            link = s.link(tunnel.config())
            await asyncio.wait_for(link.connected.wait(), 30)
            tunnel_task.cancel()  # the owner's phone is gone: nothing more reaches the hub from it
            await asyncio.gather(tunnel_task, return_exceptions=True)
            await s.stop_link(link)
            gone = asyncio.get_running_loop().time()
            assert any(x.link for x in hub.served.values()), "the hub still holds the band's link"
            await s.control.wait_advertising(s.band.address, OWNER_SILENT_S + RELOAD_S + 3)
            held = asyncio.get_running_loop().time() - gone
            assert held >= OWNER_SILENT_S - PING_S, f"let go after {held:.1f} s"
            assert all(not x.link for x in hub.served.values())
            await s.open_tunnel()  # the owner is back
            link = s.link()
            await asyncio.wait_for(link.connected.wait(), 30)
            await s.control.hold(s.band.address, TAP_MS)
            await s.until(lambda: len(s.pressed) == 1)
            assert [p.seq for p in s.store.presses(s.band_id)] == s.pressed

    run(scenario(), 120)


def test_hub_restarted_mid_way_loses_nothing(broker: TestBroker, tmp_path: Path) -> None:
    """Presses made while the hub is down wait on the band and arrive once when it is back."""

    async def scenario() -> None:
        async with school(tmp_path, broker) as s:
            link = await s.at_school()
            await s.control.hold(s.band.address, TAP_MS)
            await s.until(lambda: len(s.pressed) == 1)
            await s.stop_hub()
            await s.until(lambda: link.state is not LinkState.CONNECTED, 15)
            for _ in range(2):
                await s.control.hold(s.band.address, TAP_MS)
                await asyncio.sleep(0.7)
            s.start_hub()
            await s.until(lambda: len(s.pressed) == 3, 60)
            await asyncio.sleep(1.5)
            assert len(s.store.presses(s.band_id)) == 3
            assert len(s.pressed) == 3
            assert len(set(s.pressed)) == 3

    run(scenario(), 200)


async def hub_status(folder: Path) -> str:
    """What `hugbutton hub --data FOLDER status` prints."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hugapp.cli",
        "hub",
        "--data",
        str(folder),
        "status",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode().strip()


def test_hub_status_in_words() -> None:
    """The operator's status line: counts only; a hub that stopped writing it is not running."""
    status = {"at": 1000.0, "online": True, "enrolled": 30, "heard": 28, "links": 7, "queue": 0}
    status |= {"dropped": 0, "rejected": 2, "requests": 50, "connects": 9}
    assert status_words(status, 1001.0) == (
        "running, broker online: 30 band(s) enrolled, 28 heard in the last minute, 7 link(s) in use, "
        "0 message(s) waiting; 0 dropped, 2 rejected"
    )
    assert status_words(status | {"online": False}, 1001.0).startswith("running, broker NOT reachable")
    assert status_words(status, 1060.0).startswith("not running (last seen 60 s ago)")
    assert status_words(None, 0.0) == "not running here yet (no status written)"
    assert status_words({"at": "x"}, 0.0).startswith("the status file is unreadable")


def test_a_hub_process_killed_mid_way_loses_nothing(broker: TestBroker, tmp_path: Path) -> None:
    """`hugbutton hub run` as its own process, killed (SIGKILL) while a press waits to be acknowledged
    and started again: every press arrives once, and a Play after it buzzes once."""

    async def scenario() -> None:
        async with school(tmp_path, broker) as s:
            await s.pair_and_leave()
            await s.enrol()  # the hub process reads its enrolments from the same folder
            hub = HubProcess(tmp_path / "hub", broker.url, s.air)
            link = None
            try:
                await hub.start()
                await s.open_tunnel()
                link = s.link()
                await asyncio.wait_for(link.connected.wait(), 30)
                await s.control.hold(s.band.address, TAP_MS)
                await s.until(lambda: len(s.pressed) == 1)
                await s.control.drop_after(s.band.address, op="write", n=1, when="before")  # the Ack is lost
                await s.control.hold(s.band.address, TAP_MS)
                await asyncio.sleep(0.3)
                await hub.kill()
                await asyncio.sleep(0.7)  # taps closer together are one press of two taps
                await s.control.hold(s.band.address, TAP_MS)
                await s.until(lambda: link.state is not LinkState.CONNECTED, 15)
                await hub.start()
                await s.until(lambda: len(s.pressed) == 3, 60)
                await s.until(lambda: link.state is LinkState.CONNECTED, 30)
                words = ""
                for _ in range(20):  # the running hub writes its status every 2 s
                    words = await hub_status(tmp_path / "hub")
                    if "1 link(s) in use" in words:
                        break
                    await asyncio.sleep(0.5)
                assert words.startswith("running, broker online: 1 band(s) enrolled, 1 heard"), words
                assert "1 link(s) in use" in words, words
                assert s.band_id not in words
                before = await s.motor_runs()
                token = await link.play(patterns.HUG, 1, 255, 1)
                await s.until(lambda: token in s.felt, 30)
                await asyncio.sleep(1.5)
                assert [p.value for p in s.store.presses(s.band_id)] == [1, 1, 1]  # three single taps
                assert sorted(set(s.pressed)) == sorted(s.pressed)
                assert await s.motor_runs() == before + pulses(patterns.HUG, 1, 255, 1)
            except BaseException:
                print(hub.log.read_text(), s.pressed, link and link.stats)
                raise
            finally:
                await hub.kill()

    run(scenario(), 200)


def test_a_band_walks_between_school_home_and_the_playground_losing_and_repeating_nothing(
    broker: TestBroker, tmp_path: Path
) -> None:
    """Mum's companion owns the band and has it enrolled at the class hub. Home (her radio and the hub
    both hear it: hers is preferred), school (only the hub), the playground (nobody), home, school:
    every press is stored once, and a buzz sent through the hub buzzes once."""

    async def scenario() -> None:
        async with school(tmp_path, broker) as s:
            await s.pair()
            s.start_hub()
            phone = Companion(s.store, s.phone, broker.url, name="Mum", notifier=DesktopNotifier())
            async with phone:
                live = lambda: phone.band_live(s.band_id)  # noqa: E731

                async def link_via(via: str) -> None:
                    await s.until(lambda: live().state is LinkState.CONNECTED and live().via == via, 40)

                async def tap(expected: int) -> None:
                    await s.control.hold(s.band.address, TAP_MS)
                    await asyncio.sleep(1.0)  # a press of its own, not a double tap
                    await s.until(lambda: len(s.store.presses(s.band_id)) >= expected, 40)

                await link_via("")
                offer = await offer_enrolment(s.hub_store, broker.url)
                await phone.enrol_at_hub(offer.code, s.band_id)
                await offer.wait()
                assert phone.store.band_hub(s.band_id) is not None
                await s.control.drop_link(s.band.address)  # both hear it now: Mum's own radio wins
                await link_via("")
                await tap(1)

                await s.control.out_of_range(s.band.address, central="phone")  # at school
                await link_via("hub")
                await tap(2)
                before = await s.motor_runs()
                await phone.test_buzz(s.band_id)
                await asyncio.sleep(3.0)
                assert await s.motor_runs() > before, "a buzz through the hub reached the band"

                await s.control.out_of_range(s.band.address, central="hub")  # the playground
                await s.until(lambda: live().state is not LinkState.CONNECTED, 20)
                await s.control.hold(s.band.address, TAP_MS)  # waits on the band
                await asyncio.sleep(1.0)
                await s.control.in_range(s.band.address, central="phone")  # home
                await link_via("")
                await s.until(lambda: len(s.store.presses(s.band_id)) >= 3, 40)

                await s.control.in_range(s.band.address, central="hub")  # school again
                await s.control.out_of_range(s.band.address, central="phone")
                await link_via("hub")
                await tap(4)
                await asyncio.sleep(3.0)  # anything repeated would have arrived
                seqs = [p.seq for p in s.store.presses(s.band_id)]
                assert len(seqs) == 4, "four presses"
                assert len(set(seqs)) == 4, "each stored once"
                outgoing = [h for h in phone.history() if h.direction == "out"]
                assert len(outgoing) == 4, "and each became one hug"

                await phone.leave_hub(s.band_id)
                assert s.store.band_hub(s.band_id) is None
                await s.until(lambda: s.hub_store.enrolments() == [], 10)

    run(scenario(), 300)


def test_a_gateway_enrols_its_band_at_a_hub_from_the_command_line(broker: TestBroker, tmp_path: Path) -> None:
    """`hugbutton hub enrol` shows a code and its QR; `hugbutton gateway school` takes the QR's text
    for the gateway's band. Without a band to enrol, the gateway says so and the hub is unchanged."""

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hugapp.cli",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    async def scenario() -> None:
        async with broker:
            server = Airspace()
            air = await server.start()
            band = BandProcess(air, tmp_path / "band")
            await band.start()
            hub = ["hub", "--data", str(tmp_path / "hub"), "--broker", broker.url, "--airspace", air]
            gateway = ["gateway", "--data", str(tmp_path / "gw"), "--broker", broker.url, "--airspace", air]
            (tmp_path / "hub").mkdir()
            try:
                async with AirspaceControl(air) as control:
                    code, out = await cli(*gateway, "school", "ABCD-EFGH")
                    assert code == 2, out
                    assert "this gateway has 0 bands" in out
                    await control.hold(band.address, PAIR_HOLD_MS)
                    code, out = await cli(*gateway, "pair", await control.air_address(band.address))
                    assert code == 0, out
                    offer = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "hugapp.cli", *hub, "enrol", stdout=asyncio.subprocess.PIPE
                    )
                    assert offer.stdout is not None
                    shown = await enrol_shows(offer.stdout)
                    assert "Bands -> At school" in shown[0]
                    assert len(shown) > 10
                    assert all(set(line) <= set(" █▀▄") for line in shown[1:-1])
                    code, out = await cli(*gateway, "school", shown[-1])  # as a scanner reads it
                    assert code == 0, out
                    assert "enrolled at the hub" in out
                    await asyncio.wait_for(offer.communicate(), 60)
                    assert offer.returncode == 0
                    store = HubStore(tmp_path / "hub")
                    assert len(store.enrolments()) == 1
                    store.close()
            finally:
                await band.kill()
                await server.close()

    run(scenario(), 240)


def test_a_band_the_operator_removes_is_forgotten_by_its_owner(broker: TestBroker, tmp_path: Path) -> None:
    """The hub's operator removes a band (`hugbutton hub remove`, or the hub's screen): the hub tells
    its owner, sealed; the owner's phone forgets the hub, stops its tunnel and says so. A parent who
    removes the band herself is not told what she did."""

    async def serving(hub: Hub) -> None:  # the running hub takes up an enrolment (it looks every RELOAD_S)
        async with asyncio.timeout(RELOAD_S + 5):
            while not hub.served:  # noqa: ASYNC110 - the hub looks at its store on a timer
                await asyncio.sleep(0.1)

    async def scenario() -> None:
        async with broker, open_world(tmp_path, broker.url) as w, School.open(w) as class_hub:
            mum = await w.person("Mum")
            await w.pair(mum)
            phone = mum.phone
            await class_hub.enrol(phone, mum.band_id)
            enrolled = phone.store.band_hub(mum.band_id)
            assert enrolled is not None
            await asyncio.wait_for(phone.tunnels[mum.band_id].online.wait(), 10)
            await serving(class_hub.hub)
            assert class_hub.hub.store.remove(enrolled[0])  # what `hugbutton hub remove ID` does
            await w.until(lambda: phone.store.band_hub(mum.band_id) is None, RELOAD_S + 10)
            await w.until(lambda: mum.band_id not in phone.tunnels and not phone.links[mum.band_id].relays, 5)
            told = [n for n in mum.notifier.shown if n.title == "No longer served at school"]
            assert [n.message for n in told] == ["the class hub stopped serving Mum's band"]

            await class_hub.enrol(phone, mum.band_id)  # enrolled again; now Mum removes it herself
            await asyncio.wait_for(phone.tunnels[mum.band_id].online.wait(), 10)
            await serving(class_hub.hub)
            await phone.leave_hub(mum.band_id)
            assert phone.store.band_hub(mum.band_id) is None
            assert class_hub.hub.store.enrolments() == []
            await asyncio.sleep(RELOAD_S + 1)  # a "removed" from the hub would have come by now
            assert len([n for n in mum.notifier.shown if n.title == "No longer served at school"]) == 1

    run(scenario(), 120)
