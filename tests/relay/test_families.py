"""Two families end to end: real firmware on virtual bands, the companions' band links on bleak
(airspace backend), the router, and the sealed relay through a real broker (every kind)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from relaykit import TestBroker

from hugapp.core.bandlink import BleConfig, LinkState
from hugapp.core.companion import Companion
from hugapp.core.hugs import DayType, Receipt, Schedule
from hugapp.core.notify import DesktopNotifier
from hugapp.core.store import Store
from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.process import BandProcess
from hugsim.phone.bleak_backend import airspace_backend

TAP_MS = 80
ALWAYS = Schedule(windows={DayType.SCHOOL: (), DayType.HOME: ()})  # no quiet hours: the test runs at any hour


class Family:
    def __init__(self, name: str, band: BandProcess, phone: Companion, notifier: DesktopNotifier) -> None:
        self.name = name
        self.band = band
        self.phone = phone
        self.notifier = notifier


class Rig:
    def __init__(self, control: AirspaceControl, changed: asyncio.Condition) -> None:
        self.control = control
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
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(broker)
        server = Airspace()
        air = await server.start()
        stack.push_async_callback(server.close)
        control = await stack.enter_async_context(AirspaceControl(air))
        changed = asyncio.Condition()
        pokes: set[asyncio.Task[None]] = set()

        def poke() -> None:
            async def notify() -> None:
                async with changed:
                    changed.notify_all()

            task = asyncio.ensure_future(notify())
            pokes.add(task)
            task.add_done_callback(pokes.discard)

        rig = Rig(control, changed)
        for index, name in enumerate(("Mia", "Mum")):
            band = BandProcess(air, tmp / f"{name}-band")
            stack.push_async_callback(band.kill)
            await band.start()
            notifier = DesktopNotifier()
            phone = Companion(
                Store(tmp / f"{name}.sqlite3"),
                BleConfig(*airspace_backend(air, f"{name}-phone")),
                broker.url_for(index),  # on the cluster: the two families on different nodes
                name=name,
                notifier=notifier,
                on_change=poke,
                relay_retry_interval=2.0,
            )
            phone.router.set_schedule(ALWAYS)
            await stack.enter_async_context(phone)
            await control.hold(band.address, 5300)
            await phone.pair_band(band.address, f"{name}'s band")
            rig.families[name] = Family(name, band, phone, notifier)
        mia, mum = rig.families["Mia"], rig.families["Mum"]
        offer = await mum.phone.offer_link()
        await mia.phone.join_link(offer.code)
        await offer.wait()
        for fam in (mia, mum):
            await rig.until(lambda f=fam: f.phone.connected(f.band.address), 30)
            assert fam.phone.relay is not None
            await asyncio.wait_for(fam.phone.relay.connected.wait(), 10)
        await asyncio.sleep(1.0)  # the pairing buzzes are over; hands off the hearts
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
        server = Airspace()
        air = await server.start()
        bands = [BandProcess(air, tmp_path / f"band{i}") for i in range(2)]
        try:
            for band in bands:
                await band.start()
            async with AirspaceControl(air) as control:
                changed = asyncio.Event()
                home = Companion(
                    Store(tmp_path / "home.sqlite3"),
                    BleConfig(*airspace_backend(air)),
                    None,
                    name="Home",
                    notifier=DesktopNotifier(),
                    on_change=changed.set,
                )
                home.router.set_schedule(ALWAYS)
                async with home:
                    for band in bands:
                        await control.hold(band.address, 5300)
                        await home.pair_band(band.address)

                    async def until(predicate: Callable[[], bool]) -> None:
                        async with asyncio.timeout(30):
                            while True:
                                changed.clear()  # before looking, so no change slips between
                                if predicate():
                                    return
                                await changed.wait()

                    await until(
                        lambda: all(link.state is LinkState.CONNECTED for link in home.links.values())
                    )
                    await asyncio.sleep(1.0)
                    runs = len(await control.motor_starts(bands[1].address))
                    await control.hold(bands[0].address, TAP_MS)
                    await until(
                        lambda: (
                            bool(home.router.history()) and home.router.history()[0].receipt is Receipt.FELT
                        )
                    )
                    assert len(await control.motor_starts(bands[1].address)) > runs, "the other band buzzed"
                    hugs = home.router.history()
                    assert len(hugs) == 1
                    assert hugs[0].source_band == bands[0].address
        finally:
            for band in bands:
                await band.kill()
            await server.close()

    asyncio.run(asyncio.wait_for(main(), 120))
