"""School in the simulated world: a classroom hub and a class of children's bands, for the demo.

The hub is the product's own (`hugapp.core.hub.Hub`, as `hugbutton hub run`) on its own radio in the
airspace (central "hub"). Each classmate is a child with no phone: one parent's phone (a companion)
pairs the band as the child's, types the hub's code to enrol it, then leaves for work; the band is
then in range of the hub only::

    async with School.open(world) as school:
        await school.enrol(mum.phone, mia.band_id)           # the code shown by the hub, typed by Mum
        await school.add_classmates(19)                      # 19 more bands of 19 more families
        presses = await school.burst(within_s=10)            # "everyone, send a hug home!"
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from hugapp.core.companion import Companion
from hugapp.core.hub import Hub, HubStore, offer_enrolment
from hugapp.dev.radio import ble_config
from hugapp.dev.world import PAIR_HOLD_MS, PAIRING_BUZZES_S, TAP_MS, World
from hugsim.band.process import BandProcess

HUB_CENTRAL = "hub"
PAIR_BATCH = 5  # bands paired at once (their parents at the classroom door)


@dataclass
class Classmate:
    """A child's band and the one parent's phone that owns it."""

    name: str
    band: BandProcess
    parent: Companion
    central: str  # the parent's phone's radio
    band_id: str = ""
    parent_band: BandProcess | None = None  # the parent's own band, worn at work (paired to the phone)

    def presses_home(self) -> int:
        """The child's presses that reached the parent's phone (each stored once: (band, seq))."""
        return len(self.parent.store.presses(self.band_id))


class School:
    def __init__(self, world: World, hub: Hub) -> None:
        self.world = world
        self.hub = hub
        self.classmates: list[Classmate] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, world: World) -> AsyncGenerator[School]:
        """The class's hub, running (on the world's broker) until the block ends."""
        assert world.broker_url is not None
        hub = Hub(HubStore(world.tmp / "class-hub"), world.broker_url, ble_config(world.air, HUB_CENTRAL))
        task = asyncio.ensure_future(hub.run())
        try:
            await asyncio.wait_for(hub.online.wait(), 30)
            yield cls(world, hub)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            hub.store.close()

    async def enrol(self, phone: Companion, band_id: str) -> str:
        """The hub shows a code; the band's owner types it (Bands -> At school). Returns the code."""
        assert self.world.broker_url is not None
        offer = await offer_enrolment(self.hub.store, self.world.broker_url)
        await phone.enrol_at_hub(offer.code, band_id)
        await offer.wait()
        return offer.code

    async def add_classmates(self, n: int, parent_bands: bool = False) -> None:
        """N children's bands, each paired by its own parent's phone (PAIR_BATCH at a time) and enrolled
        at the hub; then the parents leave: each band is in range of the hub only. ``parent_bands``:
        each parent wears a band too, paired to the same phone (the child's hugs buzz it)."""
        w = self.world
        for i in range(n):
            name, parent_name = f"Pupil{i + 1}", f"Parent{i + 1}"
            band = await w.band(name)
            parent = w.companion(parent_name)
            await w.stack.enter_async_context(parent)
            c = Classmate(name, band, parent, f"{parent_name.lower()}-phone")
            c.parent_band = await w.band(parent_name) if parent_bands else None
            self.classmates.append(c)
        for k in range(0, n, PAIR_BATCH):
            group = self.classmates[k : k + PAIR_BATCH]
            worn = [c.parent_band for c in group if c.parent_band is not None]
            if worn:
                await asyncio.gather(*(w.control.hold(b.address, PAIR_HOLD_MS) for b in worn))
                await asyncio.gather(*(self._pair_parent(c) for c in group))
            await asyncio.gather(*(w.control.hold(c.band.address, PAIR_HOLD_MS) for c in group))
            await asyncio.gather(*(self._pair(c) for c in group))
        for c in self.classmates:  # one code at a time, as parents at the classroom door
            await self.enrol(c.parent, c.band_id)
        await asyncio.sleep(PAIRING_BUZZES_S)
        for c in self.classmates:
            await w.control.out_of_range(c.band.address, central=c.central)

    async def _pair(self, c: Classmate) -> None:
        on_air = await self.world.control.air_address(c.band.address)
        found = await c.parent.pair_band(on_air, f"{c.name}'s band", new_wearer=c.name)
        c.band_id = found.band_id

    async def _pair_parent(self, c: Classmate) -> None:
        assert c.parent_band is not None
        on_air = await self.world.control.air_address(c.parent_band.address)
        await c.parent.pair_band(on_air, f"{c.name}'s parent's band")

    async def burst(self, within_s: float = 10.0) -> dict[str, float]:
        """Every classmate taps once, at random moments within `within_s`; returns each band's tap
        release in airspace time (ms), by band address."""
        rng = random.Random(len(self.classmates))
        order = sorted((rng.uniform(0, within_s), i) for i in range(len(self.classmates)))
        t0 = time.monotonic()
        released: dict[str, float] = {}
        for at, i in order:
            c = self.classmates[i]
            await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
            _, released[c.band.address] = await self.world.control.hold(c.band.address, TAP_MS)
        return released

    def presses_home(self) -> int:
        return sum(c.presses_home() for c in self.classmates)
