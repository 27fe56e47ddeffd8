"""Two families end to end: real firmware on virtual bands, the companions' band links on bleak
(airspace backend), the router, and the sealed relay through a real broker (every kind)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from relaykit import TestBroker

from hugapp.core.bandlink import LinkState
from hugapp.core.hugs import Receipt
from hugapp.dev.world import PAIR_HOLD_MS, TAP_MS, Person, World, open_world

BROKER_KINDS = ("embedded", "mosquitto", "cluster")  # on the cluster: the two families on two nodes

Family = Person


class Rig:
    def __init__(self, world: World, changed: asyncio.Condition) -> None:
        self.world = world
        self.control = world.control
        self.changed = changed
        self.families: dict[str, Family] = {}

    async def until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)

    async def motor_runs(self, family: Family) -> list[float]:
        """Start times of each motor run on a family's band."""
        return await self.control.motor_starts(family.band.address)

    async def tap(self, family: Family) -> None:
        await self.control.hold(family.band.address, TAP_MS)


@contextlib.asynccontextmanager
async def two_families(broker: TestBroker, tmp: Path) -> AsyncIterator[Rig]:
    async with broker, open_world(tmp, broker.url) as world:
        changed = asyncio.Condition()
        pokes: set[asyncio.Task[None]] = set()

        def poke() -> None:
            async def notify() -> None:
                async with changed:
                    changed.notify_all()

            task = asyncio.ensure_future(notify())
            pokes.add(task)
            task.add_done_callback(pokes.discard)

        rig = Rig(world, changed)
        for index, name in enumerate(("Mia", "Mum")):
            # on the cluster: the two families on different nodes
            family = await world.person(name, poke, broker.url_for(index))
            await world.pair(family)
            rig.families[name] = family
        mia, mum = rig.families["Mia"], rig.families["Mum"]
        await world.link(mum, mia)
        await world.online(mia, mum)
        yield rig


def test_hug_felt_and_hug_back_between_families(broker: TestBroker, tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        mia, mum = rig.families["Mia"], rig.families["Mum"]
        mum_runs = len(await rig.motor_runs(mum))
        mia_runs = len(await rig.motor_runs(mia))

        await rig.tap(mia)  # Mia misses Mum at school
        await rig.until(lambda: any(h.direction == "in" for h in mum.phone.router.history()))
        incoming = next(h for h in mum.phone.router.history() if h.direction == "in")
        assert incoming.hug.value == 1
        assert incoming.sender == mia.phone.me.member_id
        # Mum's band buzzes; Mia's hug is felt, and Mia's band ticks
        await rig.until(lambda: mia.phone.router.history()[0].receipt is Receipt.FELT, 30)
        assert len(await rig.motor_runs(mum)) > mum_runs
        await asyncio.sleep(1.5)
        assert len(await rig.motor_runs(mia)) > mia_runs, "the felt tick on Mia's band"
        assert [n.title for n in mum.notifier.notifications()] == ["Hug from Mia"]

        # Mum squeezes back within 10 s: a hug back
        await rig.control.hold(mum.band.address, 1200)
        await rig.until(lambda: any(h.direction == "in" for h in mia.phone.router.history()), 30)
        back = next(h for h in mia.phone.router.history() if h.direction == "in")
        assert back.hug.hug_back_of == incoming.hug_id
        await rig.until(
            lambda: (
                next(h for h in mum.phone.router.history() if h.direction == "out").receipt is Receipt.FELT
            ),
            30,
        )
        # exactly once: one hug each way, one play each
        assert [h.direction for h in mia.phone.router.history()] == ["in", "out"]
        assert [h.direction for h in mum.phone.router.history()] == ["out", "in"]

    async def main() -> None:
        async with two_families(broker, tmp_path) as rig:
            await asyncio.wait_for(scenario(rig), 120)

    asyncio.run(main())


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
