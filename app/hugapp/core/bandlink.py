"""The phone's side of the BLE link to a band, on bleak's public API only.

    scan_bands()  find bands nearby (name, signal, pairing window open?)
    pair_band()   write a fresh band key inside the band's 5 s-hold pairing window and prove it
    BandLink      keep one paired band connected: authenticate, store and acknowledge presses
                  exactly once, send Play / SetTime / Identify, follow battery and link state

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

from hugapp.core.store import Store
from hugproto import adv, frames, gatt
from hugproto.errors import ProtocolError

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 10.0
BUSY_RETRY_S = (0.1, 0.5)  # the band was in range but not ours to have: retry after this (jittered)
MICROPYTHON_EPOCH = 946_684_800  # 2000-01-01 UTC, the band's epoch
_BATTERY_UUID = gatt.uuid16_str(gatt.BATTERY_LEVEL_UUID)


class BandLinkError(Exception):
    """Base error of the band link; the message says what a person can do about it."""


class BandNotFound(BandLinkError):
    pass


class PairingWindowClosed(BandLinkError):
    pass


class BandUnavailable(BandLinkError):
    pass


class HandshakeFailed(BandLinkError):
    pass


@dataclass(frozen=True)
class BleConfig:
    """Which bleak backend to use; None lets bleak choose the platform's own."""

    scanner_backend: type[BaseBleakScanner] | None = None
    client_backend: type[BaseBleakClient] | None = None

    def scanner_kwargs(self) -> dict[str, Any]:
        return {} if self.scanner_backend is None else {"backend": self.scanner_backend}

    def client_kwargs(self) -> dict[str, Any]:
        return {} if self.client_backend is None else {"backend": self.client_backend}


@dataclass(frozen=True)
class FoundBand:
    address: str
    name: str
    rssi: int
    pairing_open: bool
    paired: bool


class LinkState(enum.Enum):
    SCANNING = "scanning"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    OUT_OF_RANGE = "out of range"
    STOPPED = "stopped"


def _found(device: BLEDevice, data: AdvertisementData) -> FoundBand | None:
    raw = data.manufacturer_data.get(adv.COMPANY_ID)
    if gatt.HUG_SERVICE_UUID not in [u.lower() for u in data.service_uuids]:
        return None
    state = raw[0] if raw else 0
    return FoundBand(
        address=device.address,
        name=data.local_name or device.name or device.address,
        rssi=data.rssi,
        pairing_open=bool(state & frames.FLAG_PAIRING_OPEN),
        paired=bool(state & frames.FLAG_PAIRED),
    )


async def scan_bands(
    config: BleConfig, timeout: float = 5.0, progress: Callable[[FoundBand], None] | None = None
) -> list[FoundBand]:
    """Scan for Hug bands, strongest first; `progress` is called as each one is heard."""
    found: dict[str, FoundBand] = {}

    def seen(device: BLEDevice, data: AdvertisementData) -> None:
        band = _found(device, data)
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
            except asyncio.QueueFull:  # the band resends unacknowledged presses; nothing is lost
                log.warning("event queue full; dropping a notification")

        await self.client.start_notify(self.state, on_state)
        await self.client.start_notify(self.event, on_event)

    async def read_state(self, key: bytes | None) -> frames.State:
        data = bytes(await self.client.read_gatt_char(self.state))
        if not data:  # the band writes it (and notifies) once it has handled the connection
            data = await asyncio.wait_for(self.states.get(), HANDSHAKE_TIMEOUT_S)
        return frames.decode_state(data, key)

    async def write(self, data: bytes) -> None:
        await self.client.write_gatt_char(self.command, data, response=True)

    async def authenticate(self, key: bytes, nonce: bytes) -> tuple[frames.Session, frames.AuthOk]:
        auth, session = frames.phone_session(key, nonce, os.urandom(frames.NONCE_LEN))
        await self.write(auth)
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
                return session, msg


async def _find(config: BleConfig, address: str, timeout: float) -> BLEDevice | None:
    return await BleakScanner.find_device_by_address(address, timeout=timeout, **config.scanner_kwargs())


async def pair_band(
    config: BleConfig,
    store: Store,
    address: str,
    name: str | None = None,
    timeout: float = 15.0,
) -> FoundBand:
    """Pair (or re-pair) the band at `address`, whose pairing window the wearer has opened."""
    device = await _find(config, address, timeout)
    if device is None:
        raise BandNotFound(f"no band at {address} is in range: bring it closer and try again")
    async with BleakClient(device, timeout=timeout, **config.client_kwargs()) as client:
        channel = _Channel(client)
        await channel.subscribe()
        state = await channel.read_state(None)
        if not state.flags & frames.FLAG_PAIRING_OPEN:
            raise PairingWindowClosed("hold your band's heart for 5 seconds until it buzzes, then try again")
        key = os.urandom(frames.KEY_LEN)
        await channel.write(frames.encode_pair_key(key, state.nonce))
        try:
            await channel.authenticate(key, state.nonce)
        except (TimeoutError, HandshakeFailed):
            raise PairingWindowClosed(
                "the band did not take the new key: hold its heart for 5 seconds again"
            ) from None
        band_name = name or device.name or address
        store.save_band(address, band_name, key)
        battery = await _read_battery(client)
        store.band_seen(address, battery)
        log.info("paired band %s (%s)", band_name, address)
        return FoundBand(address, band_name, 0, False, True)


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
    frames_rejected: int = 0
    felt: int = 0
    last_error: str = ""
    states: deque[LinkState] = field(default_factory=lambda: deque[LinkState](maxlen=32))  # the latest


class BandLink:
    """Keeps one paired band connected, for as long as `run()` runs.

    Presses are stored durably (deduplicated by (band, seq)) before they are acknowledged, so a
    link lost at any moment loses nothing and repeats nothing. `on_press(address, seq)` is
    awaited for each new press after it is stored; `on_felt(address, token)` when the band has
    played a Play with that token.
    """

    def __init__(
        self,
        store: Store,
        address: str,
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
        self.address = address
        self.config = config
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
        again: BLEDevice | None = None  # a band whose working link just dropped: no scan first
        try:
            while True:
                device, again = again, None
                if device is None:
                    self._set_state(LinkState.SCANNING)
                    device = await _find(self.config, self.address, self.scan_timeout)
                if device is None:
                    self._set_state(LinkState.OUT_OF_RANGE)
                else:
                    self._set_state(LinkState.CONNECTING)
                    connects = self.stats.connects
                    try:
                        await self._serve(device)
                    except (BleakError, BandLinkError, ProtocolError, TimeoutError, OSError) as exc:
                        self.stats.last_error = f"{type(exc).__name__}: {exc}"
                        log.info("band %s: %s", self.address, self.stats.last_error)
                        if self.stats.connects > connects:  # it dropped after working: at once, and
                            backoff = 1.0  # straight to the band (a scan would wait for its next advert)
                            again = device
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

    async def _serve(self, device: BLEDevice) -> None:
        key = self.store.band(self.address).key
        lost = asyncio.Event()
        async with BleakClient(
            device,
            disconnected_callback=lambda _c: lost.set(),
            timeout=HANDSHAKE_TIMEOUT_S,
            **self.config.client_kwargs(),
        ) as client:
            channel = _Channel(client)
            await channel.subscribe()
            state = await channel.read_state(key)
            session, ok = await channel.authenticate(key, state.nonce)
            self._client, self._channel, self._session = client, channel, session
            self.stats.connects += 1
            try:
                await self._send(frames.SetTime(int(self.clock()) - MICROPYTHON_EPOCH, _tz_minutes()))
                self._battery_reading(ok.battery)
                self._set_state(LinkState.CONNECTED)
                reader = asyncio.ensure_future(self._read_events(channel, session))
                waiter = asyncio.ensure_future(lost.wait())
                try:
                    await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (reader, waiter):
                        task.cancel()
                    await asyncio.gather(reader, waiter, return_exceptions=True)
                if reader.done() and not reader.cancelled():
                    reader.result()  # re-raises what ended the reader
            finally:
                self._client = self._channel = self._session = None
        raise BandUnavailable("the link to the band dropped")

    async def _read_events(self, channel: _Channel, session: frames.Session) -> None:
        while True:
            data = await channel.events.get()
            try:
                msg = session.open(data)
            except ProtocolError as exc:
                self.stats.frames_rejected += 1
                log.warning("band %s sent a frame that was rejected: %s", self.address, exc)
                continue
            await self._handle(msg)

    async def _handle(self, msg: frames.Message) -> None:
        if isinstance(msg, frames.Press):
            new = self.store.record_press(
                self.address, msg.seq, msg.gesture, msg.value, msg.duration_ms, msg.age_s
            )
            if new:
                self.stats.presses_new += 1
                if self.on_press is not None:
                    await self.on_press(self.address, msg.seq)
            else:
                self.stats.presses_duplicate += 1
            await self._send(frames.Ack(msg.seq))  # only once the press is durably stored
        elif isinstance(msg, frames.Felt):
            self.stats.felt += 1
            if self.on_felt is not None:
                await self.on_felt(self.address, msg.token)
        elif isinstance(msg, frames.Status):
            self._battery_reading(msg.battery)
            if msg.rejected:
                log.warning("band %s rejected %d frames (someone nearby?)", self.address, msg.rejected)

    def _battery_reading(self, battery: int) -> None:
        """A battery level from the band: stored, then ``on_battery(before, now)``."""
        before, self.battery = self.battery, battery
        self.store.band_seen(self.address, battery)
        if self.on_battery is not None:
            self.on_battery(before, battery)

    async def _send(self, msg: frames.Message) -> None:
        async with self._write_lock:
            channel, session = self._channel, self._session
            if channel is None or session is None:
                raise BandUnavailable("the band is not connected")
            await channel.write(session.seal(msg))

    def next_token(self) -> int:
        self._token = (self._token + 1) & 0xFFFF
        return self._token

    async def play(
        self, pattern: int, signature: int, intensity: int, repeat: int, token: int | None = None
    ) -> int:
        """Ask the band to play; returns the token its Felt will carry. Raises BandUnavailable."""
        token = self.next_token() if token is None else token
        try:
            await self._send(frames.Play(pattern, signature, intensity, repeat, token))
        except BleakError as exc:
            raise BandUnavailable(f"the band went away: {exc}") from exc
        return token

    async def identify(self, seconds: int = 3) -> None:
        await self._send(frames.Identify(seconds))

    async def forget(self) -> None:
        """Tell the band to drop its key (if it is here) and remove it from this phone."""
        with contextlib.suppress(BandLinkError, BleakError):
            await self._send(frames.Unpair())
        self.store.forget_band(self.address)


def _band_busy(exc: BaseException) -> bool:
    """A failed attempt on a band that was advertising: the link went to, or was held by, another
    central (a stranger in range; the band drops them within a second or so), not a wrong key or
    a band out of range."""
    return not isinstance(exc, (HandshakeFailed, ProtocolError))


def _tz_minutes() -> int:
    offset = time.localtime().tm_gmtoff
    return max(-720, min(840, offset // 60))
