"""One companion (a phone, or a home gateway): its bands, its circles, the relay and the router.

    async with Companion(store, ble, broker_url, name="Mum") as phone:   # starts everything
        band = await phone.pair_band(address)  # as a scan found it; the wearer held the heart 5 s
        mia = await phone.pair_band(address, new_wearer="Mia")  # a band for someone without a phone
        await phone.share_band(mia.band_id, gateway_id)         # the home gateway co-owns it
        await phone.enrol_at_hub(code, mia.band_id)  # the code the classroom hub shows: served there too
        offer = await phone.offer_link()       # show offer.code / offer.qr_png(); await offer.wait()
        await phone.join_link(code)            # on the other phone
        phone.send_hug()                       # the big heart on the screen

Everything a screen shows comes from the store (history, bands, members) or the live state here
(link states, presence); `on_change` is called whenever any of it may have changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import tzinfo
from types import TracebackType
from typing import Any

from hugapp.core import bandlink, hub, linking, uisettings
from hugapp.core import relaystore as rs
from hugapp.core.api import BandLive
from hugapp.core.bandlink import BandLink, BleConfig, LinkState
from hugapp.core.hubtunnel import HubTunnel
from hugapp.core.hugs import PlaySpec
from hugapp.core.hugstore import HistoryEntry
from hugapp.core.notify import Notifier, make_notifier
from hugapp.core.relay import Outbox, Relay
from hugapp.core.router import Router
from hugapp.core.schedule import Schedule
from hugapp.core.store import Store, StoreError
from hugproto import frames

log = logging.getLogger("hugapp.companion")

SUPERVISE_MIN_S = 1.0  # a failed task starts again after this, doubling while it keeps failing
SUPERVISE_MAX_S = 30.0
RECANCEL_S = 0.5  # stopping: a task still running after this is cancelled again


class BandLinks(dict[str, BandLink]):
    """This companion's band links by band id: the band side the router plays on."""

    def connected(self, band_id: str) -> bool:
        link = self.get(band_id)
        return link is not None and link.state is LinkState.CONNECTED

    def at(self, address: str) -> str:
        """The id of the band connected here at ``address`` now, or "" (a connected band is silent)."""
        return next(
            (b for b, link in self.items() if link.address and link.address.upper() == address.upper()), ""
        )

    def want(self, band_id: str) -> None:
        link = self.get(band_id)
        if link is not None:
            link.want()

    async def play(self, band_id: str, spec: PlaySpec, token: int) -> None:
        link = self.get(band_id)
        if link is None:
            raise bandlink.BandUnavailable(f"no link to band {band_id}")
        await link.play(spec.pattern, spec.signature, spec.intensity, spec.repeat, token=token)


class Companion:
    def __init__(
        self,
        store: Store,
        ble: BleConfig,
        broker_url: str | None,
        *,
        name: str = "Me",
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        on_change: Callable[[], None] = lambda: None,
        relay_retry_interval: float = 60.0,
        band_backoff_max: float = 30.0,
    ) -> None:
        self.store = store
        self.ble = ble
        self.broker_url = broker_url
        self.clock = clock
        self.notifier = notifier or make_notifier()
        self.on_change = on_change
        self.band_backoff_max = band_backoff_max  # the longest wait between looks for a band away
        self.me = rs.ensure_identity(store, name)
        self.links = BandLinks()
        self.outbox = Outbox(store, self.me)  # filled by the router, published by the relay
        self.router = Router(
            store,
            self.me,
            self.links,
            self.notifier,
            clock=clock,
            tz=tz,
            outbox=self.outbox,
            on_change=self._changed,
            on_bands=self._bands_changed,
        )
        self.coowners = self.router.coowners
        self.hugstore = self.router.hugstore  # history, settings and counts for readers
        self.relay: Relay | None = None
        if broker_url is not None:
            self.relay = Relay(
                store,
                self.me,
                broker_url,
                clock=clock,
                on_message=self.router.on_relay_message,
                on_acked=self.router.on_delivered,
                on_presence=self._on_presence,
                on_members=self._on_members,
                on_junk=self._junk_arriving,
                retry_interval=relay_retry_interval,
                outbox=self.outbox,
            )
        self.tunnels: dict[str, HubTunnel] = {}  # band id -> the hub that serves it at school
        self._leaving: asyncio.Task[None] | None = None  # a tunnel stopping after its hub removed the band
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Companion:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def start(self) -> None:
        self._spawn("router", self.router.run)
        if self.relay is not None:
            self._spawn("relay", self.relay.run)
        for band in self.store.bands():
            self._start_link(band.band_id)

    async def stop(self) -> None:
        await _cancel(list(self._tasks.values()))
        self._tasks.clear()

    def _spawn(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._tasks[name] = asyncio.ensure_future(self._supervise(name, run))

    async def _supervise(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a task of this companion (router, relay, a band link) for good: if it ever stops with an
        error, say so and start it again (1 s, doubling to 30 s while it keeps failing at once)."""
        delay = SUPERVISE_MIN_S
        while True:
            started = time.monotonic()
            try:
                await run()
                log.warning("%s stopped by itself; starting it again", name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "%s failed; starting it again in %.0f s", name, delay, extra={"reason": "task_failed"}
                )
            if time.monotonic() - started > SUPERVISE_MAX_S:
                delay = SUPERVISE_MIN_S
            await asyncio.sleep(delay)
            delay = min(delay * 2, SUPERVISE_MAX_S)

    def _changed(self) -> None:
        self.on_change()

    def _on_presence(self, _link_id: str, _member_id: str, _online: bool) -> None:
        self._changed()

    def _on_members(self, _link_id: str) -> None:
        self._changed()

    def _junk_arriving(self, rejected: int) -> None:
        """The relay refuses messages nobody of the circles sealed (at most once an hour): say so once."""
        self.notifier.notify(
            "Junk is reaching this phone's mailbox",
            f"{rejected} messages that no one in your circles sent were refused; hugs still arrive.",
        )

    # ------------------------------------------------------------------ bands

    def connected(self, band_id: str) -> bool:
        """The band's link is up."""
        return self.links.connected(band_id)

    async def _on_press(self, _band_id: str, _seq: int) -> None:
        self.router.wake()  # the press is stored: the router routes it

    async def _on_felt(self, band: str, token: int) -> None:
        self.router.on_felt(band, token)

    def _on_band_state(self, band_id: str, state: LinkState) -> None:
        if state is LinkState.CONNECTED:
            self.router.band_connected(band_id)
        self.router.wake()
        self._changed()

    def _bands_changed(self) -> None:
        """A co-owner shared a band with us or forgot one: links follow the store."""
        here = {b.band_id for b in self.store.bands()}
        for band_id in here - set(self.links):
            self._start_link(band_id)
        for band_id in set(self.links) - here:
            self.links.pop(band_id, None)
            self.tunnels.pop(band_id, None)
            for name in ("band:", "hub:"):
                task = self._tasks.pop(name + band_id, None)
                if task is not None:
                    task.cancel()
        self.coowners.sync_wearers()
        self._changed()

    def _start_link(self, band_id: str) -> None:
        if band_id in self.links:
            return
        link = BandLink(
            self.store,
            band_id,
            self.ble,
            on_press=self._on_press,
            on_felt=self._on_felt,
            on_state=functools.partial(self._on_band_state, band_id),
            clock=self.clock,
            max_backoff=self.band_backoff_max,
            on_battery=functools.partial(self._battery_reading, band_id),
        )
        self.links[band_id] = link
        self._spawn("band:" + band_id, link.run)
        self._start_tunnel(band_id)

    def _start_tunnel(self, band_id: str) -> None:
        """A band enrolled at a hub is reached through it too (this phone's own radio preferred)."""
        enrolled = self.store.band_hub(band_id)
        link = self.links.get(band_id)
        if enrolled is None or link is None or self.broker_url is None or band_id in self.tunnels:
            return
        tunnel = self.tunnels[band_id] = HubTunnel(self.broker_url, enrolled[1])
        tunnel.on_removed = lambda: self._removed_at_hub(band_id, tunnel)
        link.relays = [tunnel.config()]
        self._spawn("hub:" + band_id, tunnel.run)

    def _removed_at_hub(self, band_id: str, tunnel: HubTunnel) -> None:
        """The hub's operator removed the band: this phone forgets the hub and says so."""
        if self.tunnels.get(band_id) is not tunnel:
            return  # enrolled elsewhere since, or left already
        where = hub.hub_words(self.store.band_hub_name(band_id))
        self.tunnels.pop(band_id, None)
        self.store.forget_band_hub(band_id)
        self.notifier.notify(
            "No longer served at school", f"{where} stopped serving {self.store.band(band_id).name}"
        )
        self._leaving = asyncio.ensure_future(self._stop_tunnel(band_id))  # not from inside the tunnel
        self._leaving.add_done_callback(lambda _t: self._changed())

    async def _stop_tunnel(self, band_id: str) -> None:
        self.tunnels.pop(band_id, None)
        link = self.links.get(band_id)
        if link is not None:
            link.relays = []
        task = self._tasks.pop("hub:" + band_id, None)
        if task is not None:
            await _cancel([task])

    async def _stop_link(self, band_id: str) -> BandLink | None:
        await self._stop_tunnel(band_id)
        link = self.links.pop(band_id, None)
        task = self._tasks.pop("band:" + band_id, None)
        if task is not None:
            await _cancel([task])
        return link

    async def enrol_at_hub(self, code: str, band_id: str) -> str:
        """Have the classroom hub showing ``code`` serve this band (Bands → "At school"); the hub
        learns only which band to serve. Returns the enrolment id."""
        if band_id not in self.links:
            raise StoreError("that band is not paired with this phone")
        await self._stop_tunnel(band_id)  # a band enrolled again, at another hub
        enrolment = await hub.enrol_at_hub(code, self.store, band_id, self._broker())
        self._start_tunnel(band_id)
        self._changed()
        return enrolment

    async def leave_hub(self, band_id: str) -> None:
        """The hub stops serving this band (it forgets it; if it cannot be reached, its operator
        removes it), and this phone stops reaching the band through it."""
        tunnel = self.tunnels.get(band_id)
        if tunnel is not None:
            with contextlib.suppress(TimeoutError):  # the broker is away: forgotten here anyway
                await asyncio.wait_for(tunnel.online.wait(), 10)
            await hub.leave_hub(self.store, band_id, tunnel)
        else:
            self.store.forget_band_hub(band_id)
        await self._stop_tunnel(band_id)
        self._changed()

    async def scan(
        self, timeout: float = 5.0, progress: Callable[[bandlink.FoundBand], None] | None = None
    ) -> list[bandlink.FoundBand]:
        return await bandlink.scan_bands(self.ble, timeout, progress, self.store.bands())

    async def pair_band(
        self,
        address: str,
        name: str | None = None,
        wearer: str | None = None,
        new_wearer: str | None = None,
    ) -> bandlink.FoundBand:
        """Pair the band advertising at ``address`` (as a scan found it) whose heart was held for 5 s;
        keeps it connected from then on. Returns it: its band id, and how many times it buzzed to
        confirm (2..5), for the parent to check it was theirs. Whose band it is: ``wearer`` (this
        companion's own member, the default, or a person without a phone in its circles), or
        ``new_wearer``, the name of a person without a phone to add."""
        if wearer is not None and new_wearer is not None:
            raise StoreError("a band has one wearer: name an existing one or a new one")
        if wearer is not None:
            self.coowners.check_wearer(wearer)
        ours = self.links.at(address) or await bandlink.recognise(self.ble, self.store, address)
        link = await self._stop_link(ours) if ours else None  # re-pairing one of ours: off the air first
        try:
            found = await bandlink.pair_band(self.ble, self.store, address, name)
        finally:
            if link is not None:
                self._start_link(link.band_id)
        try:  # whose it is, before its first press is routed
            if new_wearer is not None:
                wearer = self.coowners.add_wearer(new_wearer)
            if wearer is not None or found.band_id != ours:
                self.store.set_wearer(found.band_id, wearer or self.me.member_id)
            self.coowners.sync_wearers()
            self.coowners.send_band(found.band_id)  # a re-paired band's new key reaches its co-owners
        finally:
            self._start_link(found.band_id)
            self._changed()
        return found

    async def share_band(self, band_id: str, member_id: str) -> None:
        """Let another companion of a circle (the family's home gateway) co-own a band here: it gets
        the band's key sealed through the circle and serves the band whenever it is the one in range."""
        self.coowners.share(band_id, member_id)
        self._changed()

    async def forget_band(self, band_id: str) -> None:
        """Unpair a band here; its co-owners forget it too, and so does a hub serving it."""
        if band_id in self.tunnels:
            await self.leave_hub(band_id)
        self.coowners.send_forget(band_id)
        link = self.links.get(band_id)
        if link is not None:
            await link.forget()
        else:
            self.store.forget_band(band_id)
        await self._stop_link(band_id)
        self._changed()

    async def test_buzz(self, band_id: str) -> None:
        link = self.links.get(band_id)
        if link is None:
            raise bandlink.BandUnavailable("that band is not paired with this phone")
        await link.ready()  # at school the hub's link comes when asked for
        await link.identify(2)

    # ------------------------------------------------------------------ circles

    def _broker(self) -> str:
        if self.broker_url is None:
            raise linking.LinkError("Linking needs the family broker: start the app with --broker")
        return self.broker_url

    async def offer_link(self, link_id: str | None = None) -> linking.LinkOffer:
        offer = await linking.create_link_code(
            self.store, self.me, self._broker(), link_id=link_id, clock=self.clock, relay=self.relay
        )
        task = asyncio.ensure_future(self._after_offer(offer))
        self._tasks["offer:" + offer.code] = task
        task.add_done_callback(lambda _t: self._tasks.pop("offer:" + offer.code, None))
        return offer

    async def _after_offer(self, offer: linking.LinkOffer) -> None:
        """Once someone joined: the people without a phone we serve become members of the circle."""
        with contextlib.suppress(Exception):  # an offer that ended without a joiner: nothing to do
            await offer.wait()
            self.coowners.sync_wearers()
            self._changed()

    async def join_link(self, code: str) -> linking.LinkResult:
        result = await linking.join_with_code(code, self.store, self.me, self._broker())
        self.coowners.sync_wearers()  # the people without a phone we serve join the circle too
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await self.relay.refresh()
        self._changed()
        return result

    def members(self) -> list[rs.Member]:
        out: list[rs.Member] = []
        for link in rs.links(self.store):
            out += [m for m in rs.members(self.store, link.link_id) if m.member_id != self.me.member_id]
        return out

    # ------------------------------------------------------------------ hugs

    def send_hug(self, gesture: int = frames.GESTURE_TAP, value: int = 1) -> str:
        return self.router.send_from_screen(gesture, value)

    # ------------------------------------------------------------------ the window's API
    # The rest of hugapp.core.api.CompanionApi (Companion already has store, members, scan, pair_band,
    # forget_band, test_buzz, offer_link, join_link); the window link serves the same to the service's
    # window.

    def identity(self) -> rs.Identity:
        return rs.identity(self.store) or self.me  # the stored one carries a rename

    def history(self, limit: int = 200) -> list[HistoryEntry]:
        return self.router.history(limit)

    def schedule(self, wearer: str | None = None) -> Schedule:
        return self.router.schedule(wearer)

    def band_live(self, band_id: str) -> BandLive:
        link = self.links.get(band_id)
        return BandLive(None, None) if link is None else BandLive(link.state, link.battery, link.via)

    def online(self, link_id: str, member_id: str) -> bool | None:
        return None if self.relay is None else self.relay.presence.get((link_id, member_id))

    async def send_from_screen(self, gesture: int, value: int, squeeze_ms: int = 0) -> str:
        """The big heart on the screen: a tap, or a squeeze of ``squeeze_ms``."""
        return self.router.send_from_screen(gesture, value, squeeze_ms)

    async def rename_band(self, band_id: str, name: str) -> None:
        self.store.rename_band(band_id, name)

    async def set_schedule(self, schedule: Schedule, wearer: str | None = None) -> None:
        self.router.set_schedule(schedule, wearer)

    async def rename_me(self, name: str) -> None:
        rs.rename_identity(self.store, name)

    async def set_signature(self, member_id: str, signature: int) -> None:
        rs.check_signature(signature)
        found = [m for m in self.members() if m.member_id == member_id]
        if not found:
            raise StoreError("no member of your circles has that id")
        with self.store.transaction() as db:
            for m in found:
                rs.save_member(db, replace(m, signature=signature), self.clock())

    def _battery_reading(self, band_id: str, before: int | None, now: int) -> None:
        """A band reported its battery: tell the person once when it crosses the app's alert level."""
        low = uisettings.low_battery_percent(uisettings.load(self.store))
        if uisettings.is_low(now, low) and not uisettings.is_low(before, low):
            band = next((b for b in self.store.bands() if b.band_id == band_id), None)
            name = band.name if band is not None else band_id
            self.notifier.notify("Band battery low", f"{name} is at {now}% — charge it tonight")
        self._changed()


def circle_members(store: Store, me: str) -> list[rs.Member]:
    """The other members of every circle ``me`` is in (the window's read of ``Companion.members``)."""
    out: list[rs.Member] = []
    for link in rs.links(store):
        out += [m for m in rs.members(store, link.link_id) if m.member_id != me]
    return out


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until they have ended. A task still running after a while is cancelled
    again: Python 3.11's ``wait_for`` can lose a cancel that arrives as its inner call completes, and a
    task that lost it (a band link's reconnect loop) would otherwise run on for good."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: a task that ended with an error was logged by _supervise
