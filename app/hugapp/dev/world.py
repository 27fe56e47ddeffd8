"""The simulated world, set up in one place for the demo, the scenario tests and the benchmarks.

One airspace (the simulated radio), a broker (the embedded one unless a URL is given), virtual bands
running the real firmware (each in its own process) and companions (the app's core) on them::

    async with open_world(tmp) as world:
        mia, mum = await world.person("Mia"), await world.person("Mum")
        for p in (mia, mum):
            await world.pair(p)              # the wearer holds the heart 5 s, the phone pairs it
        await world.link(mum, mia)           # a link code offered on one phone, typed on the other
        await world.online(mia, mum)         # bands connected, relays online, pairing buzzes over
        await world.control.hold(mia.band.address, TAP_MS)

A family with a child who has no phone (the demo's and the scenario tests')::

    family = await world.family()            # Mum's phone owns Mum's and Mia's bands, Dad has his own;
    await world.online_family(family)        # the home gateway co-owns Mia's band

Every companion made here has no quiet hours (:data:`NO_QUIET_HOURS`), so a run plays every hug at
whatever hour it happens; a test that is about quiet hours sets its own schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

from hugapp.core import relaystore as rs
from hugapp.core.broker import EmbeddedBroker
from hugapp.core.companion import Companion
from hugapp.core.notify import DesktopNotifier
from hugapp.core.schedule import DayType, Schedule
from hugapp.core.store import Store
from hugapp.dev.radio import ble_config
from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.process import BandProcess

NO_QUIET_HOURS = Schedule(windows={DayType.SCHOOL: (), DayType.HOME: ()})
TAP_MS = 80  # a tap on the heart
PAIR_HOLD_MS = 5300  # a hold that opens the band's pairing window (5 s)
PAIRING_BUZZES_S = 1.5  # after pairing, the band's confirming buzzes, over before a test presses
READY_TIMEOUT_S = 60.0
GATEWAY_BAND_BACKOFF_S = 5.0  # as hugapp.gateway: the gateway looks for a band away this often


class Person:
    """One wearer: a virtual band and the companion it is paired with (for a child without a phone,
    a parent's phone); ``member_id`` is the wearer's id in the circles."""

    def __init__(self, name: str, band: BandProcess, phone: Companion, notifier: DesktopNotifier) -> None:
        self.name = name
        self.band = band
        self.phone = phone
        self.notifier = notifier
        self.band_id = ""  # the phone's id for the band, once paired

    @property
    def member_id(self) -> str:
        return self.phone.store.band(self.band_id).wearer or self.phone.me.member_id


class Family:
    """Mia (a band, no phone), Mum (a phone owning her band and Mia's), Dad (a phone and a band) and
    the family's home gateway co-owning Mia's band."""

    def __init__(self, mia: Person, mum: Person, dad: Person, home: Companion) -> None:
        self.mia = mia
        self.mum = mum
        self.dad = dad
        self.home = home

    def people(self) -> dict[str, Person]:
        return {"Mia": self.mia, "Mum": self.mum, "Dad": self.dad}

    def companions(self) -> list[Companion]:
        return [self.mum.phone, self.dad.phone, self.home]


class World:
    """The airspace, the broker, and the bands and companions started in it (stopped with the world)."""

    def __init__(self, tmp: Path, air: str, control: AirspaceControl, broker_url: str | None) -> None:
        self.tmp = tmp
        self.air = air
        self.control = control
        self.broker_url = broker_url
        self.stack = contextlib.AsyncExitStack()
        self.changed = asyncio.Event()  # set whenever a companion of this world reports a change

    def notify(self) -> None:
        self.changed.set()

    async def until(self, predicate: Callable[[], object], timeout: float = READY_TIMEOUT_S) -> None:
        """Wait for ``predicate`` to hold, looking again whenever a companion reports a change."""
        async with asyncio.timeout(timeout):
            while True:
                self.changed.clear()  # before looking, so no change slips between
                if predicate():
                    return
                await self.changed.wait()

    async def band(self, name: str, board: str = "xiao_esp32c3") -> BandProcess:
        """A virtual band (state in TMP/NAME-band), killed when the world ends."""
        band = BandProcess(self.air, self.tmp / f"{name}-band", board=board)
        self.stack.push_async_callback(band.kill)
        await band.start()
        return band

    def companion(
        self,
        name: str,
        on_change: Callable[[], None] | None = None,
        *,
        broker: bool = True,
        broker_url: str | None = None,
        notifier: DesktopNotifier | None = None,
        relay_retry_interval: float = 2.0,
        band_backoff_max: float = 30.0,
    ) -> Companion:
        """A companion (store TMP/NAME.sqlite3) on the world's radio and broker (``broker_url`` if
        given, e.g. a cluster's nodes in another order; none with ``broker=False``), with no quiet
        hours; not started: ``async with`` it, or see :meth:`person`."""

        def changed() -> None:
            self.notify()
            if on_change is not None:
                on_change()

        phone = Companion(
            Store(self.tmp / f"{name}.sqlite3"),
            ble_config(self.air, f"{name.lower()}-phone"),
            (broker_url or self.broker_url) if broker else None,
            name=name,
            notifier=notifier or DesktopNotifier(),
            on_change=changed,
            relay_retry_interval=relay_retry_interval,
            band_backoff_max=band_backoff_max,
        )
        if phone.router.hugstore.setting("schedule") is None:  # a companion started again keeps its own
            phone.router.set_schedule(NO_QUIET_HOURS)
        return phone

    async def person(
        self, name: str, on_change: Callable[[], None] | None = None, broker_url: str | None = None
    ) -> Person:
        """A band and a started companion for it (not yet paired), on ``broker_url`` if given."""
        band = await self.band(name)
        notifier = DesktopNotifier()
        phone = self.companion(name, on_change, notifier=notifier, broker_url=broker_url)
        await self.stack.enter_async_context(phone)
        return Person(name, band, phone, notifier)

    async def pair(self, person: Person, *, phoneless: bool = False) -> None:
        """The wearer holds the heart for 5 s (the pairing window opens), then the phone pairs it
        (``phoneless``: as the band of a new person without a phone of their own)."""
        await self.control.hold(person.band.address, PAIR_HOLD_MS)
        on_air = await self.control.air_address(person.band.address)  # what the phone's scan shows
        found = await person.phone.pair_band(
            on_air, f"{person.name}'s band", new_wearer=person.name if phoneless else None
        )
        person.band_id = found.band_id

    async def family(
        self,
        on_change: Callable[[], None] | None = None,
        broker_urls: tuple[str | None, str | None, str | None] = (None, None, None),
        say: Callable[[str, str], None] = lambda _clock, _text: None,
    ) -> Family:
        """Mum's phone pairs her band and Mia's (Mia has no phone); Dad pairs his; Mum and Dad link;
        the home gateway joins the circle and co-owns Mia's band. ``broker_urls``: Mum's, Dad's and
        the gateway's broker (a cluster's nodes in different orders), the world's by default; ``say``
        (clock, text) narrates each step (the demo)."""
        mum = await self.person("Mum", on_change, broker_urls[0])
        mia = Person("Mia", await self.band("Mia"), mum.phone, mum.notifier)
        dad = await self.person("Dad", on_change, broker_urls[1])
        say("07:40", "Mum holds the heart of her new band for 5 seconds: the pairing window opens")
        await self.pair(mum)
        say("07:40", f"Mum's phone pairs it (band {mum.band_id}) with a fresh key")
        say("07:41", "Mia holds the heart of hers; Mum's phone asks whose band it is: Mia's, who has")
        await self.pair(mia, phoneless=True)
        say("", f"no phone: Mum's phone owns Mia's band too (band {mia.band_id})")
        await self.pair(dad)
        say("07:42", f"Dad's phone pairs Dad's band (band {dad.band_id})")
        offer = await mum.phone.offer_link()
        say("07:45", f"Mum's phone shows a link code {offer.code}; Dad's phone types it (SPAKE2, sealed)")
        await dad.phone.join_link(offer.code)
        await offer.wait()
        home = await self.gateway("Home", on_change, broker_urls[2])
        offer = await mum.phone.offer_link(rs.links(mum.phone.store)[0].link_id)
        await home.join_link(offer.code)
        await offer.wait()
        say("07:46", f"the home gateway joins the circle with code {offer.code}")
        await mum.phone.share_band(mia.band_id, home.me.member_id)
        say("07:46", "Mum's phone shares Mia's band with it (the band key, sealed through the circle):")
        say("", "the gateway co-owns Mia's band and serves it whenever it is the one in range")
        return Family(mia, mum, dad, home)

    async def gateway(
        self, name: str = "Home", on_change: Callable[[], None] | None = None, broker_url: str | None = None
    ) -> Companion:
        """A started home gateway (a companion that looks for its bands every few seconds)."""
        home = self.companion(name, on_change, broker_url=broker_url, band_backoff_max=GATEWAY_BAND_BACKOFF_S)
        await self.stack.enter_async_context(home)
        return home

    async def online_family(self, family: Family, timeout: float = READY_TIMEOUT_S) -> None:
        """Every band served (Mia's by one of its owners), every companion online, every companion
        knowing Mia; then the pairing buzzes end."""
        mia = family.mia.band_id

        def ready() -> bool:
            return (
                family.mum.phone.connected(family.mum.band_id)
                and family.dad.phone.connected(family.dad.band_id)
                and (family.mum.phone.connected(mia) or family.home.connected(mia))
                and any(b.band_id == mia for b in family.home.store.bands())
                and all(
                    any(m.member_id == family.mia.member_id and len(m.served_by) == 2 for m in c.members())
                    for c in (family.dad.phone, family.home)
                )
            )

        await self.until(ready, timeout)
        for c in family.companions():
            if c.relay is not None:
                await asyncio.wait_for(c.relay.connected.wait(), timeout)
        await asyncio.sleep(PAIRING_BUZZES_S)

    async def link(self, offerer: Person, joiner: Person) -> None:
        """One phone shows a link code, the other types it; both end up in one family."""
        offer = await offerer.phone.offer_link()
        await joiner.phone.join_link(offer.code)
        await offer.wait()

    async def online(self, *people: Person, timeout: float = READY_TIMEOUT_S) -> None:
        """Each band connected to its phone and each phone's relay online; then the pairing buzzes end."""
        for p in people:
            await self.until(lambda p=p: p.phone.connected(p.band_id), timeout)
            relay = p.phone.relay
            if relay is not None:
                await asyncio.wait_for(relay.connected.wait(), timeout)
        await asyncio.sleep(PAIRING_BUZZES_S)  # hands off the hearts


@contextlib.asynccontextmanager
async def open_world(
    tmp: Path, broker_url: str | None = None, *, broker: bool = True
) -> AsyncGenerator[World]:
    """A world in ``tmp``: an airspace, and the broker at ``broker_url`` or, when none is given, an
    embedded one (none at all with ``broker=False``). Everything started in it stops when it ends."""
    async with contextlib.AsyncExitStack() as outer:
        if broker_url is None and broker:
            embedded = EmbeddedBroker("127.0.0.1", 0)
            await embedded.start()
            outer.push_async_callback(embedded.stop)
            broker_url = embedded.url
        server = Airspace()
        air = await server.start()
        outer.push_async_callback(server.close)
        control = await outer.enter_async_context(AirspaceControl(air))
        world = World(tmp, air, control, broker_url)
        async with world.stack:
            yield world
