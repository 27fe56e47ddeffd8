"""A class at school: one airspace, one broker, one classroom hub and N children's bands, each owned
by its own family's phone (out of range: the phones are at home) and enrolled at the hub.

Each family's owner side is its unchanged BandLink with the hub tunnel as its relay: it connects when
the band's advert says a press waits (a bit only the owner and the hub can read) or when it has
something to deliver, and lets the link go when idle, so a hub of 7 links serves a class of 20::

    async with classroom(tmp, broker, 20) as c:
        await c.press_all(within_s=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from hubkit import PAIR_HOLD_MS, TAP_MS
from relaykit import TestBroker

from hugapp.core import bandlink
from hugapp.core.bandlink import BandLink, BleConfig
from hugapp.core.hub import Hub, HubStore, enrol_at_hub, offer_enrolment
from hugapp.core.hubtunnel import HubTunnel
from hugapp.core.store import Store
from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.process import BandProcess
from hugsim.phone.bleak_backend import airspace_backend


@dataclass
class Pupil:
    """One child's band and its family's phone (store, tunnel, band link)."""

    band: BandProcess
    phone: BleConfig
    store: Store
    band_id: str = ""
    link: BandLink | None = None
    pressed: list[tuple[int, float]] = field(default_factory=list[tuple[int, float]])  # (seq, when)
    felt: list[int] = field(default_factory=list[int])


class Classroom:
    def __init__(self, tmp: Path, air: str, control: AirspaceControl, broker: TestBroker) -> None:
        self.tmp, self.air, self.control, self.broker = tmp, air, control, broker
        self.pupils: list[Pupil] = []
        self.hub = Hub(HubStore(tmp / "hub"), broker.url, BleConfig(*airspace_backend(air, "hub")))
        self.changed = asyncio.Event()
        self.most_links = 0  # the most links the hub held at once (sampled)
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(self, coro: object) -> None:
        self._tasks.append(asyncio.ensure_future(coro))  # type: ignore[arg-type]

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str = "") -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self.changed.clear()
                    await asyncio.wait({asyncio.ensure_future(self.changed.wait())}, timeout=0.2)
        except TimeoutError:
            raise AssertionError(f"not within {timeout:.0f} s: {what}\n{self.report()}") from None

    def report(self) -> str:
        """Each family's link: state, connects, releases, presses, the last error; the hub's status."""
        lines = [f"hub: {self.hub.status()}, most links at once {self.most_links}"]
        for i, p in enumerate(self.pupils):
            link = p.link
            if link is not None:
                s = link.stats
                lines.append(
                    f"{i}: {link.state.value}, connects {s.connects}, releases {s.releases}, "
                    f"pressed {len(p.pressed)}, felt {len(p.felt)}, last error {s.last_error}"
                )
        return "\n".join(lines)

    async def add_pupils(self, n: int, batch: int = 5) -> None:
        """N bands, paired ``batch`` at a time by their families' phones (each phone the band at its
        own address), then at school: out of every phone's range."""
        for i in range(n):
            band = BandProcess(self.air, self.tmp / f"band{i}")
            await band.start()
            phone = BleConfig(*airspace_backend(self.air, f"phone{i}"))
            self.pupils.append(Pupil(band, phone, Store(self.tmp / f"family{i}.sqlite3")))
        for k in range(0, n, batch):
            group = self.pupils[k : k + batch]
            await asyncio.gather(*(self.control.hold(p.band.address, PAIR_HOLD_MS) for p in group))
            await asyncio.gather(*(self._pair(p) for p in group))
        await asyncio.sleep(1.5)  # the confirming buzzes are over
        for i, p in enumerate(self.pupils):
            await self.control.out_of_range(p.band.address, central=f"phone{i}")

    async def _pair(self, p: Pupil) -> None:
        address = await self.control.air_address(p.band.address)
        paired = await bandlink.pair_band(p.phone, p.store, address, name="band")
        p.band_id = paired.band_id

    async def enrol_all(self) -> None:
        for p in self.pupils:  # one code at a time, as parents at the classroom door
            offer = await offer_enrolment(self.hub.store, self.broker.url)
            await enrol_at_hub(offer.code, p.store, p.band_id, self.broker.url)
            await offer.wait()

    async def start(self) -> None:
        self.spawn(self.hub.run())
        self.spawn(self._sample())
        for p in self.pupils:
            enrolled = p.store.band_hub(p.band_id)
            assert enrolled is not None
            tunnel = HubTunnel(self.broker.url, enrolled[1])
            self.spawn(tunnel.run())
            await asyncio.wait_for(tunnel.online.wait(), 10)
            p.link = self._link(p, tunnel)
            self.spawn(p.link.run())

    def _link(self, p: Pupil, tunnel: HubTunnel) -> BandLink:
        async def on_press(_band: str, seq: int) -> None:
            p.pressed.append((seq, time.monotonic()))
            self.changed.set()

        async def on_felt(_band: str, token: int) -> None:
            p.felt.append(token)
            self.changed.set()

        link = BandLink(
            p.store,
            p.band_id,
            p.phone,
            on_press=on_press,
            on_felt=on_felt,
            on_state=lambda _s: self.changed.set(),
            scan_timeout=3.0,
            max_backoff=2.0,
        )
        link.relays = [tunnel.config()]
        return link

    async def _sample(self) -> None:
        while True:
            self.most_links = max(self.most_links, self.hub.status()["links"])
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for p in self.pupils:
            p.store.close()
            await p.band.kill()
        self.hub.store.close()


@contextlib.asynccontextmanager
async def classroom(tmp: Path, broker: TestBroker, n: int) -> AsyncIterator[Classroom]:
    server = Airspace()
    air = await server.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(server.close)
        await stack.enter_async_context(broker)
        control = await stack.enter_async_context(AirspaceControl(air))
        c = Classroom(tmp, air, control, broker)
        stack.push_async_callback(c.close)
        await c.add_pupils(n)
        await c.enrol_all()
        await c.start()
        yield c


__all__ = ["TAP_MS", "Classroom", "Pupil", "classroom"]
