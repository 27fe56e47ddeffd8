"""A family end to end with a child who has no phone: real firmware on virtual bands, the companions'
band links on bleak (airspace backend), the router, and the sealed relay through a real broker (every
kind). Mum's phone owns Mum's band and Mia's; Dad has a phone and a band; the family's home gateway
co-owns Mia's band and serves it whenever it is the one in range."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from relaykit import TestBroker

from hugapp.core.bandlink import LinkState
from hugapp.core.companion import Companion
from hugapp.core.hugs import Receipt
from hugapp.core.hugstore import TICK_PREFIX
from hugapp.dev.world import PAIR_HOLD_MS, TAP_MS, Family, Person, World, open_world

BROKER_KINDS = ("embedded", "mosquitto", "cluster")  # on the cluster: the companions on different nodes


class Rig:
    def __init__(self, world: World, family: Family) -> None:
        self.world = world
        self.control = world.control
        self.family = family

    async def until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        await self.world.until(predicate, timeout)

    async def buzzes(self, person: Person) -> list[int]:
        """The Play tokens the band started, in order (the simulator's play probe)."""
        return [int(e.value) for e in await self.control.timeline(person.band.address) if e.kind == "play"]

    async def tap(self, person: Person) -> None:
        await self.control.hold(person.band.address, TAP_MS)


def felt_on(c: Companion, band: str, hug_id: str) -> bool:
    row = c.store.db.execute(
        "SELECT 1 FROM plays WHERE band = ? AND hug_id = ? AND state = 'felt'", (band, hug_id)
    ).fetchone()
    return row is not None


def hugs_from(c: Companion, sender: str) -> set[str]:
    return {h.hug_id for h in c.router.history(10_000) if h.hug.sender == sender}


def plays_of(c: Companion, band: str) -> list[tuple[str, str]]:
    """(hug id, state) of every hug play (ticks aside) on ``band`` at ``c``."""
    rows = c.store.db.execute(
        "SELECT hug_id, state FROM plays WHERE band = ? AND hug_id NOT LIKE 'tick:%' ORDER BY rowid", (band,)
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


@contextlib.asynccontextmanager
async def a_family(broker: TestBroker, tmp: Path) -> AsyncIterator[Rig]:
    async with broker, open_world(tmp, broker.url) as world:
        urls = (broker.url_for(0), broker.url_for(1), broker.url_for(2))  # on the cluster: three nodes
        family = await world.family(broker_urls=urls)
        await world.online_family(family)
        yield Rig(world, family)


def test_a_press_from_the_phoneless_child_reaches_each_parent_once_and_is_felt(
    broker: TestBroker, tmp_path: Path
) -> None:
    async def scenario(rig: Rig) -> None:
        f = rig.family
        mia, mum, dad, home = f.mia, f.mum, f.dad, f.home
        assert mia.member_id not in (mum.phone.me.member_id, dad.phone.me.member_id, home.me.member_id)
        before = {p.name: len(await rig.buzzes(p)) for p in (mia, mum, dad)}

        await rig.tap(mia)  # Mia misses her parents
        await rig.until(
            lambda: bool(hugs_from(dad.phone, mia.member_id)) and bool(hugs_from(mum.phone, mia.member_id))
        )
        (hug_id,) = hugs_from(dad.phone, mia.member_id)
        assert hugs_from(mum.phone, mia.member_id) == {hug_id}, "one hug, whichever owner routed it"
        await rig.until(
            lambda: felt_on(mum.phone, mum.band_id, hug_id) and felt_on(dad.phone, dad.band_id, hug_id)
        )
        # Mia's signature, from her member record in the circle
        mia_sig = next(m.signature for m in dad.phone.members() if m.member_id == mia.member_id)
        assert mia_sig not in (
            0,
            next(m.signature for m in dad.phone.members() if m.member_id == mum.phone.me.member_id),
        )
        # the router that took the press has the hug felt, and Mia's band ticks
        routed_by = next(
            c
            for c in (mum.phone, home)
            if any(h.hug_id == hug_id and h.direction == "out" for h in c.router.history())
        )
        await rig.until(
            lambda: next(h for h in routed_by.router.history() if h.hug_id == hug_id).receipt is Receipt.FELT
        )
        await rig.until(
            lambda: any(felt_on(c, mia.band_id, TICK_PREFIX + hug_id) for c in (mum.phone, home)), 30
        )
        await asyncio.sleep(3.0)  # a duplicate would arrive by now
        assert len(await rig.buzzes(mum)) == before["Mum"] + 1, "Mum's band buzzed once"
        assert len(await rig.buzzes(dad)) == before["Dad"] + 1, "Dad's band buzzed once"
        assert len(await rig.buzzes(mia)) == before["Mia"] + 1, "Mia's band ticked once"
        assert [n.title for n in dad.notifier.notifications()] == ["Hug from Mia"]
        # nobody played Mia's hug on Mia's own band
        assert all(hug_id not in dict(plays_of(c, mia.band_id)) for c in (mum.phone, home))

        # Dad squeezes back within 10 s: a hug back, played on Mia's band once, wherever it is served
        await rig.control.hold(dad.band.address, 1200)
        await rig.until(
            lambda: (
                bool(hugs_from(mum.phone, dad.phone.me.member_id))
                and bool(hugs_from(home, dad.phone.me.member_id))
            )
        )
        (back_id,) = hugs_from(home, dad.phone.me.member_id)
        back = next(h for h in home.router.history() if h.hug_id == back_id)
        assert back.hug.hug_back_of == hug_id
        await rig.until(
            lambda: (
                all(dict(plays_of(c, mia.band_id)).get(back_id) == "felt" for c in (mum.phone, home))
                and felt_on(mum.phone, mum.band_id, back_id)
            )
        )
        await rig.until(
            lambda: next(h for h in dad.phone.router.history() if h.hug_id == back_id).receipt is Receipt.FELT
        )
        await asyncio.sleep(3.0)
        assert len(await rig.buzzes(mia)) == before["Mia"] + 2, "the hug back buzzed Mia's band once"
        assert len(await rig.buzzes(mum)) == before["Mum"] + 2, "and Mum's once"

    async def main() -> None:
        async with a_family(broker, tmp_path) as rig:
            await asyncio.wait_for(scenario(rig), 150)

    asyncio.run(asyncio.wait_for(main(), 400))  # the family's set-up and teardown too


def test_co_owners_switching_mid_flight_lose_and_repeat_nothing(tmp_path: Path) -> None:
    """Mia's band served by Mum's phone, then (phone off) by the home gateway, then by the phone
    again, while Mia and Dad keep pressing: every press once on each parent's band, each hug to Mia
    buzzed once on her band, whichever owner played it."""

    async def main() -> None:
        async with open_world(tmp_path) as world:
            family = await world.family()
            await world.online_family(family)
            mia, mum, dad, home = family.mia, family.mum, family.dad, family.home
            control = world.control
            band = mia.band.address  # the band on the air (the airspace's name for it)
            bid = mia.band_id  # the owners' id for it

            async def served_by(c: Companion) -> None:
                await world.until(lambda: c.connected(bid), 60)

            # start with the phone serving Mia's band: the gateway is out of its range
            await control.out_of_range(band, central="home-phone")
            await served_by(mum.phone)
            await control.in_range(band, central="home-phone")
            mia_presses, dad_presses = 0, 0
            for step in range(3):
                await control.hold(band, TAP_MS)
                mia_presses += 1
                await asyncio.sleep(0.7)
                await control.hold(dad.band.address, TAP_MS)
                dad_presses += 1
                await asyncio.sleep(0.3 * step)
            # phone off mid-flight: Mia's press and Dad's hug may be anywhere between band and phone
            await control.hold(band, TAP_MS)
            mia_presses += 1
            await control.hold(dad.band.address, TAP_MS)
            dad_presses += 1
            await asyncio.sleep(0.5)
            await mum.phone.stop()
            await served_by(home)
            for _ in range(2):
                await control.hold(band, TAP_MS)
                mia_presses += 1
                await asyncio.sleep(0.7)
                await control.hold(dad.band.address, TAP_MS)
                dad_presses += 1
                await asyncio.sleep(0.7)
            # the phone comes back (the same store), and the gateway goes out of range
            phone = world.companion("Mum")
            await world.stack.enter_async_context(phone)
            await control.out_of_range(band, central="home-phone")
            await served_by(phone)
            await control.hold(band, TAP_MS)
            mia_presses += 1
            await asyncio.sleep(0.7)
            await control.hold(dad.band.address, TAP_MS)
            dad_presses += 1

            mia_id, dad_id = mia.member_id, dad.phone.me.member_id

            def presses_from(c: Companion, sender: str) -> int:
                return sum(h.hug.count for h in c.router.history(10_000) if h.hug.sender == sender)

            def all_felt() -> bool:
                mum_plays = plays_of(phone, mum.band_id)
                dad_plays = plays_of(dad.phone, dad.band_id)
                mia_plays = [plays_of(c, bid) for c in (phone, home)]
                return (
                    presses_from(dad.phone, mia_id) >= mia_presses
                    and presses_from(phone, dad_id) >= dad_presses
                    and presses_from(home, dad_id) >= dad_presses
                    and all(state == "felt" for _, state in mum_plays + dad_plays)
                    and all(state == "felt" for plays in mia_plays for _, state in plays)
                )

            await world.until(all_felt, 120)
            await asyncio.sleep(4.0)  # a duplicate would arrive by now
            # every press once: the hugs Mia's owners routed, as Dad received them
            assert presses_from(dad.phone, mia_id) == mia_presses
            assert presses_from(phone, dad_id) == dad_presses
            assert presses_from(home, dad_id) == dad_presses
            mia_hugs = {h.hug_id for h in dad.phone.router.history(10_000) if h.hug.sender == mia_id}
            assert {h for h, _ in plays_of(dad.phone, dad.band_id)} == mia_hugs | {
                h.hug_id
                for h in dad.phone.router.history(10_000)
                if h.direction == "in" and h.hug.sender == mum.phone.me.member_id
            }
            # no hug buzzed twice on any band: the band's own record of what it started (the play probe)
            for b in (band, mum.band.address, dad.band.address):
                plays = [e.value for e in await control.timeline(b) if e.kind == "play"]
                assert len(plays) == len(set(plays)), f"a Play token buzzed twice on {b}"
            # and each hug to Mia was played on her band by one owner or the other, once: both
            # owners know every one as played, and each owner did play some of them itself
            home_plays = dict(plays_of(home, bid))
            phone_plays = dict(plays_of(phone, bid))
            assert set(home_plays) == set(phone_plays)
            assert home.links[bid].stats.felt > 0, "the gateway served Mia's band while the phone was off"
            assert phone.links[bid].stats.felt > 0, "the phone served it again once back"

    asyncio.run(asyncio.wait_for(main(), 300))


def test_re_pairing_mias_band_reaches_the_gateway(tmp_path: Path) -> None:
    """Mum's phone re-pairs Mia's band (a fresh key): the gateway gets the new key through the circle
    and serves the band with it; a press from Mia then reaches Dad through the gateway."""

    async def main() -> None:
        async with open_world(tmp_path) as world:
            family = await world.family()
            await world.online_family(family)
            mia, mum, dad, home = family.mia, family.mum, family.dad, family.home
            control, band, bid = world.control, mia.band.address, mia.band_id  # on the air; the owners' id
            old_key = home.store.band(bid).key
            await control.out_of_range(band, central="home-phone")
            await world.until(lambda: mum.phone.connected(bid), 60)
            await world.pair(mia)  # the pairing window again, and Mum's phone writes a new key
            assert mia.band_id == bid, "a re-paired band keeps its id"
            new_key = mum.phone.store.band(bid).key
            assert new_key != old_key
            await world.until(lambda: home.store.band(bid).key == new_key, 30)
            assert home.store.band(bid).wearer == mia.member_id
            # the phone goes away; the gateway serves the band with the new key
            await control.out_of_range(band, central="mum-phone")
            await control.in_range(band, central="home-phone")
            await world.until(lambda: home.connected(bid), 60)
            await asyncio.sleep(1.5)  # the pairing buzz is over
            await control.hold(band, TAP_MS)
            await world.until(lambda: bool(hugs_from(dad.phone, mia.member_id)), 30)
            (hug_id,) = hugs_from(dad.phone, mia.member_id)
            assert any(h.hug_id == hug_id and h.direction == "out" for h in home.router.history())

    asyncio.run(asyncio.wait_for(main(), 240))


def test_two_bands_on_one_companion_without_a_broker(tmp_path: Path) -> None:
    """A home gateway holding both bands routes hugs locally, with receipts, and needs no broker."""

    async def main() -> None:
        async with open_world(tmp_path, broker=False) as world:
            bands = [await world.band(f"band{i}") for i in range(2)]
            control = world.control
            home = world.companion("Home")
            async with home:
                ids: list[str] = []
                for band in bands:
                    await control.hold(band.address, PAIR_HOLD_MS)
                    ids.append((await home.pair_band(await control.air_address(band.address))).band_id)

                async def until(predicate: Callable[[], bool]) -> None:
                    await world.until(predicate, 30)

                await until(lambda: all(link.state is LinkState.CONNECTED for link in home.links.values()))
                await asyncio.sleep(1.0)
                runs = len(await control.motor_starts(bands[1].address))
                await control.hold(bands[0].address, TAP_MS)
                await until(
                    lambda: bool(home.router.history()) and home.router.history()[0].receipt is Receipt.FELT
                )
                assert len(await control.motor_starts(bands[1].address)) > runs, "the other band buzzed"
                hugs = home.router.history()
                assert len(hugs) == 1
                assert hugs[0].source_band == ids[0]

    asyncio.run(asyncio.wait_for(main(), 120))
