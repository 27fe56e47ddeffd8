"""The phone's side of the BLE link to a band, on bleak's public API only.

    scan_bands()  find bands nearby (signal, pairing window open?, which of ours it is)
    pair_band()   agree a band key with the band (X25519) inside its 5 s-hold pairing window
    BandLink      keep one paired band connected: authenticate, store and acknowledge presses
                  exactly once, send Play / SetTime / Identify, follow battery and link state

A band advertises from a random address it changes every few minutes, with no name; only the
identity token in its advert (``hugproto.adv``) says which band it is, to whoever holds its key.
So a band is stored and linked by its band id (from its key at pairing, see ``band_id``), and found
by matching tokens, never by address.

bleak picks the platform backend; a different one (the simulated airspace in tests and
`--sim`) is passed in through `BleConfig`, which hands it to bleak's `backend=` argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from hugapp.core.store import Band, Store
from hugproto import adv, frames, gatt, pairing
from hugproto.errors import ProtocolError
from hugproto.mac import Hmac

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 10.0
# Reconnecting without a scan waits this long for the band to advertise: long enough to queue behind
# three strangers' 1 s holds, short enough that a band which rebooted to a new address is soon scanned for.
IDLE_RELEASE_S = 3.0  # a link through a relay that carried nothing this long is let go (a hub holds few)
CROWDED_RELEASE_S = 0.5  # ... this long, while the relay says other bands wait for a link
FELT_WAIT_S = 30.0  # ... unless a Play sent less than this ago is not felt yet
PARKED_LOOK_S = 30.0  # a parked link's looks (this phone's radio, the relay's waiting bit) last this long
PREFER_OWN_RADIO_S = 1.5  # a band a relay hears first waits this long for this device's radio to hear it
STRAIGHT_BACK_TIMEOUT_S = 5.0
BUSY_RETRY_S = (0.1, 0.5)  # the band was in range but not ours to have: retry after this (jittered)
MICROPYTHON_EPOCH = 946_684_800  # 2000-01-01 UTC, the band's epoch
_BATTERY_UUID = gatt.uuid16_str(gatt.BATTERY_LEVEL_UUID)


class BandLinkError(Exception):
    """Base error of the band link; the message says what a person can do about it."""


class BandNotFound(BandLinkError):
    pass


class PairingWindowClosed(BandLinkError):
    pass


class PairingTaken(BandLinkError):
    """Another device completed a pairing with this band in the same window."""


class BandUnavailable(BandLinkError):
    pass


class FrameMissing(BandLinkError):
    """A frame of the band's session never arrived: the link is started again."""


class ProtocolMismatch(BandLinkError):
    pass


TAKEN_MESSAGE = (
    "another device paired with this band just now: hold the heart 10 s to reset it, then pair again"
)
# A band stops advertising while a device is connected to it: a stranger that paired and stays
# connected makes it silent, so "not in range" would not be the whole truth.
_UNHEARD = (
    "the band at {} is silent: it is out of range, or another device is connected to it. If it buzzed"
    " a wave and pulses without your phone pairing, another device paired with it: hold the heart 10 s"
    " to reset it, then pair again"
)


class HandshakeFailed(BandLinkError):
    pass


@dataclass(frozen=True)
class BleConfig:
    """Which bleak backend to use; None lets bleak choose the platform's own."""

    scanner_backend: type[BaseBleakScanner] | None = None
    client_backend: type[BaseBleakClient] | None = None
    via: str = ""  # "": this device's own radio; else the relay that carries the band (a classroom hub)
    crowded: Callable[[], bool] | None = None  # the relay says other bands wait for its few links

    def scanner_kwargs(self) -> dict[str, Any]:
        return {} if self.scanner_backend is None else {"backend": self.scanner_backend}

    def client_kwargs(self) -> dict[str, Any]:
        return {} if self.client_backend is None else {"backend": self.client_backend}


@dataclass(frozen=True)
class FoundBand:
    """A band heard on the air. ``address`` is where it is now (it changes every few minutes);
    ``band_id`` is which of this companion's bands it is, or "" for someone else's or a new one."""

    address: str
    name: str
    rssi: int
    pairing_open: bool
    paired: bool
    band_id: str = ""
    code: int = 0  # after pair_band: how many times the band buzzed to confirm (2..5)


class LinkState(enum.Enum):
    SCANNING = "scanning"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    OUT_OF_RANGE = "out of range"
    PARKED = "at school, idle"  # reachable through a relay, link let go until there is something to carry
    STOPPED = "stopped"


READY_TO_PAIR = "a band ready to pair"  # what a scan calls bands that are not this companion's
OTHER_BAND = "a Hug band"
NEW_BAND_NAME = "Hug band"  # a newly paired band's name until someone renames it
_BAND_ID_LABEL = b"hug band id"


def band_id(key: bytes) -> str:
    """A band's stable id on this companion (and on any other holding its key): from its key."""
    return Hmac(key).digest(_BAND_ID_LABEL)[:6].hex()


def _address_bytes(address: str) -> bytes | None:
    try:
        raw = bytes.fromhex(address.replace(":", "").replace("-", ""))
    except ValueError:
        return None
    return raw if len(raw) == adv.ADDR_LEN else None


def _hug_advert(data: AdvertisementData) -> tuple[int, bytes] | None:
    """(state, token) of a Hug band's advert, else None."""
    raw = data.manufacturer_data.get(adv.COMPANY_ID)
    if gatt.HUG_SERVICE_UUID not in [u.lower() for u in data.service_uuids]:
        return None
    if raw is None or len(raw) != 1 + adv.TOKEN_LEN:
        return None
    return raw[0], bytes(raw[1:])


def band_waiting(ident: Hmac, device: BLEDevice, data: AdvertisementData) -> int:
    """-1 when this advert is not from the band whose identity key made ``ident``; else 1 when a
    press waits on the band to be sent, 0 when none does."""
    found, addr = _hug_advert(data), _address_bytes(device.address)
    if found is None or addr is None:
        return -1
    return adv.recognise(ident, addr, bytes((found[0],)) + found[1])


def is_band(ident: Hmac, device: BLEDevice, data: AdvertisementData) -> bool:
    """Whether this advert comes from the band whose identity key made ``ident``."""
    return band_waiting(ident, device, data) >= 0


def _identities(bands: list[Band]) -> list[tuple[Band, Hmac]]:
    return [(b, Hmac(adv.identity_key(b.key))) for b in bands]


def _found(device: BLEDevice, data: AdvertisementData, mine: list[tuple[Band, Hmac]]) -> FoundBand | None:
    found = _hug_advert(data)
    if found is None:
        return None
    state = found[0]
    pairing_open = bool(state & frames.FLAG_PAIRING_OPEN)
    band = next((b for b, ident in mine if is_band(ident, device, data)), None)
    name = band.name if band else READY_TO_PAIR if pairing_open else OTHER_BAND
    return FoundBand(
        address=device.address,
        name=name,
        rssi=data.rssi,
        pairing_open=pairing_open,
        paired=bool(state & frames.FLAG_PAIRED),
        band_id=band.band_id if band else "",
    )


async def scan_bands(
    config: BleConfig,
    timeout: float = 5.0,
    progress: Callable[[FoundBand], None] | None = None,
    known: list[Band] | None = None,
) -> list[FoundBand]:
    """Scan for Hug bands, strongest first; `progress` is called as each one is heard. Bands among
    `known` (this companion's) are recognised by their token and named."""
    found: dict[str, FoundBand] = {}
    mine = _identities(known or [])

    def seen(device: BLEDevice, data: AdvertisementData) -> None:
        band = _found(device, data, mine)
        if band is None:
            return
        found[band.address] = band
        if progress is not None:
            progress(band)

    scanner = BleakScanner(seen, service_uuids=[gatt.HUG_SERVICE_UUID], **config.scanner_kwargs())
    async with scanner:
        await asyncio.sleep(timeout)
    return sorted(found.values(), key=lambda b: -b.rssi)


class _Channel:
    """The Hug characteristics of one connected client, with notifications queued."""

    def __init__(self, client: BleakClient) -> None:
        self.client = client
        service = client.services.get_service(gatt.HUG_SERVICE_UUID)
        if service is None:
            raise HandshakeFailed("this device has no Hug service: is it a Hug band?")
        chars = {c.uuid.lower(): c for c in service.characteristics}
        try:
            self.event = chars[gatt.EVENT_CHAR_UUID]
            self.command = chars[gatt.COMMAND_CHAR_UUID]
            self.state = chars[gatt.STATE_CHAR_UUID]
        except KeyError as exc:
            raise HandshakeFailed(f"the band's Hug service lacks {exc}: update its firmware") from None
        self.events: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)
        self.states: asyncio.Queue[bytes] = asyncio.Queue(maxsize=8)

    async def subscribe(self) -> None:
        def on_state(_c: BleakGATTCharacteristic, data: bytearray) -> None:
            if not data:  # BlueZ signals what a read returned, even the empty value before the band is ready
                return
            with contextlib.suppress(asyncio.QueueFull):
                self.states.put_nowait(bytes(data))

        def on_event(_c: BleakGATTCharacteristic, data: bytearray) -> None:
            try:
                self.events.put_nowait(bytes(data))
            except asyncio.QueueFull:  # the gap drops the link: the band sends its presses again
                log.warning("event queue full; dropping a notification")

        await self.client.start_notify(self.state, on_state)
        await self.client.start_notify(self.event, on_event)

    async def read_state(self, key: bytes | None) -> frames.State:
        data = bytes(await self.client.read_gatt_char(self.state))
        if not data:  # the band writes it (and notifies) once it has handled the connection
            data = await asyncio.wait_for(self.states.get(), HANDSHAKE_TIMEOUT_S)
        if data[0] >> 5 != frames.VERSION:
            older = data[0] >> 5 < frames.VERSION
            raise ProtocolMismatch(
                f"the band speaks protocol {data[0] >> 5}, this app {frames.VERSION}: "
                + ("update the band's firmware (hugbutton band flash)" if older else "update this app")
            )
        return frames.decode_state(data, key)

    async def write(self, data: bytes) -> None:
        await self.client.write_gatt_char(self.command, data, response=True)

    async def authenticate(self, key: bytes, nonce: bytes) -> tuple[frames.Session, frames.AuthOk]:
        auth, session = frames.phone_session(key, nonce, os.urandom(frames.NONCE_LEN))
        await self.write(auth)
        return session, await self.await_auth_ok(session)

    async def await_auth_ok(self, session: frames.Session) -> frames.AuthOk:
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HandshakeFailed("the band did not answer the key check; is it paired with this phone?")
            data = await asyncio.wait_for(self.events.get(), remaining)
            try:
                msg = session.open(data)
            except ProtocolError as exc:
                log.warning("ignoring a frame before AuthOk: %s", exc)
                continue
            if isinstance(msg, frames.AuthOk):
                return msg


async def find_band(
    config: BleConfig, key: bytes, timeout: float, *, waiting: bool = False
) -> BLEDevice | None:
    """The band with this key, by the token in its adverts (its address changes); with ``waiting``,
    only once its advert says a press waits on it."""
    ident = Hmac(adv.identity_key(key))
    return await BleakScanner.find_device_by_filter(
        lambda d, a: band_waiting(ident, d, a) >= (1 if waiting else 0),
        timeout=timeout,
        service_uuids=[gatt.HUG_SERVICE_UUID],
        **config.scanner_kwargs(),
    )


async def find_band_via(
    routes: list[BleConfig], key: bytes, timeout: float
) -> tuple[BLEDevice, BleConfig] | None:
    """The band with this key on whichever route hears it, ``routes[0]`` (this device's own radio)
    preferred: a band heard through a relay first gets ``PREFER_OWN_RADIO_S`` more to be heard here."""
    looks = {asyncio.ensure_future(find_band(r, key, timeout)): r for r in routes}
    own = next(iter(looks))
    relayed: tuple[BLEDevice, BleConfig] | None = None
    try:
        pending = set(looks)
        while pending:
            wait = PREFER_OWN_RADIO_S if relayed is not None else None
            done, pending = await asyncio.wait(pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                return relayed  # the own radio did not hear it in time
            for look in done:
                device = look.result()
                if device is not None and look is own:
                    return device, looks[look]
                if device is not None and relayed is None:
                    relayed = device, looks[look]
            if own.done() and relayed is not None:
                return relayed
        return relayed
    finally:
        for look in looks:
            look.cancel()
        await asyncio.gather(*looks, return_exceptions=True)


async def _find_at(
    config: BleConfig, address: str, timeout: float
) -> tuple[BLEDevice, AdvertisementData] | None:
    """The Hug band advertising at `address` now, with its advert."""
    heard: list[AdvertisementData] = []

    def match(d: BLEDevice, a: AdvertisementData) -> bool:
        if d.address.upper() != address.upper() or _hug_advert(a) is None:
            return False
        heard.append(a)
        return True

    device = await BleakScanner.find_device_by_filter(match, timeout=timeout, **config.scanner_kwargs())
    return None if device is None or not heard else (device, heard[-1])


def _ours(store: Store, device: BLEDevice, data: AdvertisementData) -> Band | None:
    return next((b for b, ident in _identities(store.bands()) if is_band(ident, device, data)), None)


async def recognise(config: BleConfig, store: Store, address: str, timeout: float = 5.0) -> str:
    """The id of this companion's band advertising at `address`, or "" (not ours, or not heard)."""
    found = await _find_at(config, address, timeout)
    band = None if found is None else _ours(store, *found)
    return "" if band is None else band.band_id


async def pair_band(
    config: BleConfig,
    store: Store,
    address: str,
    name: str | None = None,
    timeout: float = 15.0,
) -> FoundBand:
    """Pair (or re-pair) the band advertising at `address` (as a scan found it), whose pairing window
    the wearer has opened. A band this companion had already keeps its id (and history).

    The key is agreed by X25519 and never crosses the air. The band buzzes ``code`` times after a
    rising wave to confirm; show the number so the parent can check it was their band that buzzed.
    Raises PairingTaken when another device paired with the band in this window first.
    """
    deadline = time.monotonic() + timeout
    found = await _find_at(config, address, timeout)
    if found is None:
        raise BandNotFound(_UNHEARD.format(address))
    before = _ours(store, *found)
    device = found[0]
    while True:
        try:
            return await _pair_once(config, store, device, before, name, timeout)
        except (BleakError, TimeoutError, OSError) as exc:
            # the band serves one connection at a time: another device may hold it right now
            if time.monotonic() > deadline:
                raise BandUnavailable(f"could not pair with the band: {exc}") from None
            log.info("pairing %s: %s; trying again", address, exc)
            await asyncio.sleep(0.5)
            again = await _find_at(config, address, max(0.5, deadline - time.monotonic()))
            if again is None:
                raise BandNotFound(_UNHEARD.format(address)) from None
            device = again[0]


async def _pair_once(
    config: BleConfig, store: Store, device: BLEDevice, before: Band | None, name: str | None, timeout: float
) -> FoundBand:
    async with BleakClient(device, timeout=timeout, **config.client_kwargs()) as client:
        channel = _Channel(client)
        await channel.subscribe()
        state = await channel.read_state(None)
        if not state.flags & frames.FLAG_PAIRING_OPEN:
            if state.flags & frames.FLAG_JUST_PAIRED:
                raise PairingTaken(TAKEN_MESSAGE)
            raise PairingWindowClosed("hold your band's heart for 5 seconds until it buzzes, then try again")
        secret = X25519PrivateKey.generate()
        phone_pub = secret.public_key().public_bytes_raw()
        for half in (0, 1):
            await channel.write(pairing.encode_pub(frames.PAIR_PUB, half, phone_pub))
        band_pub = await _band_pub(channel)
        if band_pub is None:
            raise await _why_not_paired(channel)
        try:
            shared = secret.exchange(X25519PublicKey.from_public_bytes(band_pub))
            nonce = os.urandom(frames.NONCE_LEN)
            key = pairing.band_key(shared, state.nonce, nonce, phone_pub, band_pub)
        except (ValueError, ProtocolError):
            raise HandshakeFailed("the band sent an invalid public key: is it a Hug band?") from None
        await channel.write(pairing.encode_confirm(key, state.nonce, nonce))
        session = frames.Session(key, state.nonce, nonce, frames.PHONE)
        try:
            await channel.await_auth_ok(session)
        except (TimeoutError, HandshakeFailed):
            raise await _why_not_paired(channel) from None
        bid = before.band_id if before is not None else band_id(key)
        band_name = name or (before.name if before is not None else NEW_BAND_NAME)
        store.save_band(bid, band_name, key)
        battery = await _read_battery(client)
        store.band_seen(bid, battery)
        code = frames.pairing_code(key)
        log.info("paired band %s (%s) at %s; it buzzed %d times", band_name, bid, device.address, code)
        return FoundBand(device.address, band_name, 0, False, True, bid, code)


async def _band_pub(channel: _Channel) -> bytes | None:
    """The band's public key from its two BandPub notifications; None if it does not send them."""
    halves = pairing.PubHalves()
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            data = await asyncio.wait_for(channel.events.get(), remaining)
        except TimeoutError:
            return None
        try:
            if halves.add(*pairing.decode_pub(data, frames.BAND_PUB)):
                return bytes(halves.pub)
        except ProtocolError as exc:
            log.warning("ignoring a frame while pairing: %s", exc)
    return None


async def _why_not_paired(channel: _Channel) -> BandLinkError:
    """The band refused: say why, from its state now."""
    with contextlib.suppress(BleakError, TimeoutError, ProtocolError, BandLinkError):
        state = await channel.read_state(None)
        if state.flags & frames.FLAG_JUST_PAIRED:
            return PairingTaken(TAKEN_MESSAGE)
    return PairingWindowClosed("the band did not take the new key: hold its heart for 5 seconds again")


async def _read_battery(client: BleakClient) -> int | None:
    try:
        data = await client.read_gatt_char(_BATTERY_UUID)
    except (BleakError, ValueError):
        return None
    return data[0] if data else None


PressHandler = Callable[[str, int], Awaitable[None]]


@dataclass
class LinkStats:
    connects: int = 0
    presses_new: int = 0
    presses_duplicate: int = 0
    presses_relayed: int = 0  # new presses that came through a relay (a classroom hub)
    frames_rejected: int = 0
    frames_missing: int = 0  # links dropped because a frame from the band never arrived
    releases: int = 0  # links through a relay let go when idle
    felt: int = 0
    last_error: str = ""
    states: deque[LinkState] = field(default_factory=lambda: deque[LinkState](maxlen=32))  # the latest


class BandLink:
    """Keeps one paired band connected, for as long as `run()` runs.

    Presses are stored durably (deduplicated by (band, seq)) before they are acknowledged, so a
    link lost at any moment loses nothing and repeats nothing. `on_press(band_id, seq)` is
    awaited for each new press after it is stored; `on_felt(band_id, token)` when the band has
    played a Play with that token.
    """

    def __init__(
        self,
        store: Store,
        band_id: str,
        config: BleConfig,
        on_press: PressHandler | None = None,
        on_felt: Callable[[str, int], Awaitable[None]] | None = None,
        on_state: Callable[[LinkState], None] | None = None,
        clock: Callable[[], float] = time.time,
        scan_timeout: float = 10.0,
        max_backoff: float = 30.0,
        on_battery: Callable[[int | None, int], None] | None = None,
    ) -> None:
        self.store = store
        self.band_id = band_id
        self.config = config
        self.relays: list[BleConfig] = []  # other routes to the band (hubs it is enrolled at)
        self.via = ""  # the route of the link up now: "" this device's radio, else the relay's name
        self.on_press = on_press
        self.on_felt = on_felt
        self.on_state = on_state
        self.on_battery = on_battery
        self.clock = clock
        self.scan_timeout = scan_timeout
        self.max_backoff = max_backoff
        self.state = LinkState.STOPPED
        self.battery: int | None = None
        self.stats = LinkStats()
        self.connected = asyncio.Event()
        self._client: BleakClient | None = None
        self._channel: _Channel | None = None
        self._session: frames.Session | None = None
        self._write_lock = asyncio.Lock()
        self._token = random.randrange(0x10000)
        self._active_at = 0.0  # when the link last carried something (monotonic)
        self._unfelt: dict[int, float] = {}  # Play tokens sent on this link and not felt yet
        self._wanted = asyncio.Event()  # something waits to go to the band: a parked link connects

    def want(self) -> None:
        """Something waits to be sent to the band: a link parked at a relay connects now."""
        self._wanted.set()

    async def ready(self, timeout: float = 20.0) -> None:
        """Until the link is up: a link parked at a relay is asked for and awaited."""
        if self.state is LinkState.PARKED:
            self.want()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connected.wait(), timeout)
        if self.state is not LinkState.CONNECTED:
            raise BandUnavailable("the band is not connected")

    def _set_state(self, state: LinkState) -> None:
        if state is self.state:
            return
        self.state = state
        self.stats.states.append(state)
        if state is LinkState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()
        if self.on_state is not None:
            self.on_state(state)

    async def run(self) -> None:
        """Connect, serve, and reconnect with backoff after any drop, until cancelled."""
        backoff = 1.0
        # a band whose working link just dropped, with its route: no scan first
        again: tuple[BLEDevice, BleConfig] | None = None
        parked = False
        try:
            while True:
                key = self.store.band(self.band_id).key
                found, again = again, None
                straight = found is not None
                if parked and self.relays:
                    self._set_state(LinkState.PARKED)
                    found = await self._watch(key)
                    self.via = ""
                parked = False
                if found is None:
                    self._set_state(LinkState.SCANNING)
                    found = await find_band_via([self.config, *self.relays], key, self.scan_timeout)
                if found is None:
                    self._set_state(LinkState.OUT_OF_RANGE)
                else:
                    self._set_state(LinkState.CONNECTING)
                    connects = self.stats.connects
                    try:
                        if straight:
                            parked = await self._serve_straight(found, key)
                        else:
                            parked = await self._serve(*found, key, HANDSHAKE_TIMEOUT_S)
                        if parked:
                            self.via = found[1].via
                            continue
                    except (BleakError, BandLinkError, ProtocolError, TimeoutError, OSError) as exc:
                        self.stats.last_error = f"{type(exc).__name__}: {exc}"
                        log.info("band %s: %s", self.band_id, self.stats.last_error)
                        if self.stats.connects > connects:  # it dropped after working: at once, and
                            backoff = 1.0  # straight to the band (a scan would wait for its next advert)
                            again = found
                            continue
                        if straight:  # not back at its old address: scan for it at once
                            continue
                        if _band_busy(exc):  # in range, but someone else had the link: try again soon
                            backoff = 1.0
                            await asyncio.sleep(random.uniform(*BUSY_RETRY_S))
                            continue
                        self._set_state(LinkState.OUT_OF_RANGE)
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.max_backoff)
        finally:
            self._set_state(LinkState.STOPPED)

    async def _watch(self, key: bytes) -> tuple[BLEDevice, BleConfig] | None:
        """Parked: until this phone's radio hears the band (it came home), a relay hears it say a
        press waits (that route), or something waits to go to it (None: look everywhere)."""
        while True:
            looks: dict[asyncio.Future[Any], BleConfig] = {
                asyncio.ensure_future(find_band(self.config, key, PARKED_LOOK_S)): self.config
            }
            for r in self.relays:
                looks[asyncio.ensure_future(find_band(r, key, PARKED_LOOK_S, waiting=True))] = r
            wanted: asyncio.Future[Any] = asyncio.ensure_future(self._wanted.wait())
            try:
                pending: set[asyncio.Future[Any]] = {*looks, wanted}
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    if wanted in done:
                        return None
                    for look in done:
                        device = None if look.exception() is not None else look.result()
                        if device is not None:
                            return device, looks[look]
                    if pending == {wanted}:
                        break  # every look ended empty: look again
            finally:
                for task in (*looks, wanted):
                    task.cancel()
                await asyncio.gather(*looks, wanted, return_exceptions=True)
            await asyncio.sleep(0.5)

    async def _idle(self, route: BleConfig) -> None:
        """Returns once a link through a relay has carried nothing for ``IDLE_RELEASE_S`` (or
        ``CROWDED_RELEASE_S`` while the relay is crowded) and no Play is waiting for its Felt; never
        on this phone's own radio."""
        if not route.via:
            await asyncio.Event().wait()
        while True:
            now = time.monotonic()
            self._unfelt = {t: at for t, at in self._unfelt.items() if now - at < FELT_WAIT_S}
            quiet = now - self._active_at
            crowded = route.crowded is not None and route.crowded()
            limit = CROWDED_RELEASE_S if crowded else IDLE_RELEASE_S
            if quiet >= limit and not self._unfelt and not self._wanted.is_set():
                return
            await asyncio.sleep(max(0.1, limit - quiet))

    async def _serve_straight(self, found: tuple[BLEDevice, BleConfig], key: bytes) -> bool:
        """Back straight to the address the band just had, while a look listens for it at a new one
        (its address may have rolled meanwhile): heard there before the link is up, that is served."""
        device, route = found
        straight = asyncio.ensure_future(self._serve(device, route, key, STRAIGHT_BACK_TIMEOUT_S))
        ident = Hmac(adv.identity_key(key))
        look = asyncio.ensure_future(
            BleakScanner.find_device_by_filter(
                lambda d, a: d.address != device.address and is_band(ident, d, a),
                timeout=STRAIGHT_BACK_TIMEOUT_S,
                service_uuids=[gatt.HUG_SERVICE_UUID],
                **route.scanner_kwargs(),
            )
        )
        up = asyncio.ensure_future(self.connected.wait())
        try:
            await asyncio.wait({straight, look, up}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            straight.cancel()
            await asyncio.gather(straight, return_exceptions=True)
            raise
        finally:
            for task in (look, up):
                task.cancel()
            await asyncio.gather(look, up, return_exceptions=True)
        heard = look.done() and not look.cancelled() and look.exception() is None
        moved = look.result() if heard else None
        if moved is None or straight.done() or self.connected.is_set():
            return await straight
        straight.cancel()
        await asyncio.gather(straight, return_exceptions=True)
        log.info("band %s: heard at a new address; connecting there", self.band_id)
        return await self._serve(moved, route, key, HANDSHAKE_TIMEOUT_S)

    async def _serve(self, device: BLEDevice, route: BleConfig, key: bytes, connect_timeout: float) -> bool:
        """Serve one link until it drops (raises) or, through a relay, is let go when idle (True)."""
        lost = asyncio.Event()
        async with BleakClient(
            device,
            disconnected_callback=lambda _c: lost.set(),
            timeout=connect_timeout,
            **route.client_kwargs(),
        ) as client:
            channel = _Channel(client)
            async with asyncio.timeout(2 * HANDSHAKE_TIMEOUT_S):  # a GATT request never answered
                await channel.subscribe()  # (a band gone mid-handshake) must not hold the link for good
                state = await channel.read_state(key)
                session, ok = await channel.authenticate(key, state.nonce)
            self._client, self._channel, self._session = client, channel, session
            self.via = route.via
            self.stats.connects += 1
            self._active_at, self._unfelt = time.monotonic(), {}
            try:
                await self._send(frames.SetTime(int(self.clock()) - MICROPYTHON_EPOCH, _tz_minutes()))
                self._battery_reading(ok.battery)
                self._set_state(LinkState.CONNECTED)
                self._wanted.clear()
                reader = asyncio.ensure_future(self._read_events(channel, session))
                waiter = asyncio.ensure_future(lost.wait())
                idler = asyncio.ensure_future(self._idle(route))
                done: set[asyncio.Task[Any]] = set()
                try:
                    done, _ = await asyncio.wait({reader, waiter, idler}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (reader, waiter, idler):
                        task.cancel()
                    await asyncio.gather(reader, waiter, idler, return_exceptions=True)
                if reader in done:
                    reader.result()  # re-raises what ended the reader
                if idler in done and waiter not in done:
                    self.stats.releases += 1
                    return True  # let go: leaving the client's context disconnects
            finally:
                self._client = self._channel = self._session = None
                self.via = ""
        raise BandUnavailable("the link to the band dropped")

    async def _read_events(self, channel: _Channel, session: frames.Session) -> None:
        while True:
            data = await channel.events.get()
            expected = session.rx_counter + 1
            try:
                msg = session.open(data)
            except ProtocolError as exc:
                self.stats.frames_rejected += 1
                log.warning("band %s sent a frame that was rejected: %s", self.band_id, exc)
                continue
            if session.rx_counter != expected:
                # a frame went missing (a full controller or queue, a relay dropping it): were it a
                # press, acknowledging a later one would remove it from the band (acks are
                # cumulative), so this frame is not handled and the link starts again, where the
                # band sends every press it still holds
                self.stats.frames_missing += 1
                raise FrameMissing(f"frame {expected} from the band never arrived; reconnecting")
            self._active_at = time.monotonic()
            await self._handle(msg)

    async def _handle(self, msg: frames.Message) -> None:
        if isinstance(msg, frames.Press):
            new = self.store.record_press(
                self.band_id, msg.seq, msg.gesture, msg.value, msg.duration_ms, msg.age_s
            )
            if new:
                self.stats.presses_new += 1
                if self.via:
                    self.stats.presses_relayed += 1
                if self.on_press is not None:
                    await self.on_press(self.band_id, msg.seq)
            else:
                self.stats.presses_duplicate += 1
            await self._send(frames.Ack(msg.seq))  # only once the press is durably stored
        elif isinstance(msg, frames.Felt):
            self._unfelt.pop(msg.token, None)
            self.stats.felt += 1
            if self.on_felt is not None:
                await self.on_felt(self.band_id, msg.token)
        elif isinstance(msg, frames.Status):
            self._battery_reading(msg.battery)
            if msg.rejected:
                log.warning("band %s rejected %d frames (someone nearby?)", self.band_id, msg.rejected)

    def _battery_reading(self, battery: int) -> None:
        """A battery level from the band: stored, then ``on_battery(before, now)``."""
        before, self.battery = self.battery, battery
        self.store.band_seen(self.band_id, battery)
        if self.on_battery is not None:
            self.on_battery(before, battery)

    async def _send(self, msg: frames.Message) -> None:
        async with self._write_lock:
            channel, session = self._channel, self._session
            if channel is None or session is None:
                raise BandUnavailable("the band is not connected")
            self._active_at = time.monotonic()
            await channel.write(session.seal(msg))

    @property
    def address(self) -> str:
        """Where the band is connected now (a link keeps its address), or "" when it is not."""
        client = self._client
        return "" if client is None else client.address

    def next_token(self) -> int:
        self._token = (self._token + 1) & 0xFFFF
        return self._token

    async def play(
        self, pattern: int, signature: int, intensity: int, repeat: int, token: int | None = None
    ) -> int:
        """Ask the band to play; returns the token its Felt will carry. Raises BandUnavailable."""
        token = self.next_token() if token is None else token
        self._unfelt[token] = time.monotonic()
        try:
            await self._send(frames.Play(pattern, signature, intensity, repeat, token))
        except BleakError as exc:
            raise BandUnavailable(f"the band went away: {exc}") from exc
        return token

    async def identify(self, seconds: int = 3) -> None:
        """The band buzzes a rising wave and its pairing code's pulses (as when it paired) and blinks."""
        await self._send(frames.Identify(seconds))

    async def forget(self) -> None:
        """Tell the band to drop its key (if it is here) and remove it from this phone."""
        with contextlib.suppress(BandLinkError, BleakError):
            await self._send(frames.Unpair())
        self.store.forget_band(self.band_id)


def _band_busy(exc: BaseException) -> bool:
    """A failed attempt on a band that was advertising: the link went to, or was held by, another
    central (a stranger in range; the band drops them within a second or so), not a wrong key or
    a band out of range."""
    return not isinstance(exc, (HandshakeFailed, ProtocolError))


def _tz_minutes() -> int:
    offset = time.localtime().tm_gmtoff
    return max(-720, min(840, offset // 60))
