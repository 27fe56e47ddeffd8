"""`hugbutton hub`: a classroom relay that carries bands' BLE traffic to their owners and reads none of it.

A hub holds no band key and no circle key. An enrolment (a short code, SPAKE2 over the broker as for
linking, see ``linking.offer_code``) gives it, per band, only:

* the band's identity key (``hugproto.adv.identity_key``): enough to recognise the band's adverts
  behind its rotating address, not to authenticate to it or read a frame;
* a tunnel key shared with the band's owner (``hugapp.core.hubtunnel``).

The hub then serves the owner's requests through the tunnel: the band's adverts while the owner
scans, a link to the band (to that band only), reads, writes and notifications. The band's frames are
sealed between band and owner (protocol 2), so a hub, honest or not, can delay or drop them, never
read, forge or replay them into a buzz.

    offer = await offer_enrolment(hub_store, broker_url)   # offer.code: what the parent types
    enrolment = await offer.wait()
    ... (the parent's app) await enrol_at_hub(code, store, band_id, broker_url)
    await Hub(hub_store, broker_url, ble_config).run()
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import aiomqtt
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from hugapp.core.bandlink import BleConfig, band_waiting
from hugapp.core.envelope import EnvelopeError
from hugapp.core.hubtunnel import (
    ADV_EVERY_S,
    PING_S,
    PING_TIMEOUT_S,
    SCAN_LEASE_S,
    UP,
    HubTunnel,
    Tunnel,
    hexbytes,
)
from hugapp.core.linking import HUB, CodeOffer, LinkError, join_code, offer_code
from hugapp.core.relay import NotDelivering, connect_any, delivering, parse_broker_urls, publish
from hugapp.core.store import Store
from hugproto import adv, gatt
from hugproto.mac import Hmac

log = logging.getLogger("hugapp.hub")

ADVERT_FRESH_S = 5.0  # a band not heard for longer is not connected to (it moved, or is connected)
CROWDED_S = 5.0  # after a connect to a band failed, answers to the others say "busy" this long
CONNECT_LIMIT_S = 20.0  # the longest connect a request may ask for
RELOAD_S = 2.0  # how often a running hub reads its enrolments (`hugbutton hub enrol` adds them)
MAX_HUB_NAME = 40
WHOSE_CACHE = 4096  # adverts recognised (or not) by address and token, before starting over
HEARD_S = 60.0  # a band heard this recently counts as "heard" in the hub's status
# a link its owner has not asked about (pinged) for this long is let go: the owner gave up on it (a
# connect it stopped waiting for, a phone gone) and the band, linked to no one, could not advertise
OWNER_SILENT_S = 2 * PING_S + PING_TIMEOUT_S
OUT_QUEUE = 1024  # messages waiting for the broker; beyond, notifications are dropped (and counted)


def tunnel_key(exchange_key: bytes) -> bytes:
    """The hub-owner tunnel key, from the enrolment exchange's key."""
    return hmac.new(exchange_key, b"hugbutton/v1 hub tunnel key", hashlib.sha256).digest()


@dataclass(frozen=True)
class Enrolment:
    """One band a hub serves: all it knows of the band and its owner."""

    enrolment_id: str
    tunnel_key: bytes
    identity_key: bytes
    added_at: float


class HubStore:
    """The hub's enrolments, in SQLite under its data folder (written by `enrol`, read by `run`)."""

    def __init__(self, folder: Path | str, clock: Callable[[], float] = time.time) -> None:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        self.status_path = path / "status.json"  # a running hub's counts, for `hugbutton hub status`
        self.clock = clock
        self.db = sqlite3.connect(path / "hub.sqlite3", isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS enrolments (enrolment_id TEXT PRIMARY KEY, tunnel_key BLOB NOT NULL,"
            " identity_key BLOB NOT NULL, added_at REAL NOT NULL)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def close(self) -> None:
        self.db.close()

    def write_status(self, status: dict[str, Any]) -> None:
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(self.status_path)

    def read_status(self) -> dict[str, Any] | None:
        try:
            status = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return None
        return cast(dict[str, Any], status) if isinstance(status, dict) else None

    @property
    def name(self) -> str:
        """What parents see the hub called ("Class 2"), told to each band's owner at enrolment."""
        row = self.db.execute("SELECT value FROM settings WHERE key = 'name'").fetchone()
        return "" if row is None else str(row[0])

    def set_name(self, name: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO settings VALUES ('name', ?)", (hub_name(name),))

    def add(self, tunnel: bytes, identity_key: bytes) -> Enrolment:
        e = Enrolment(secrets.token_hex(8), tunnel, identity_key, self.clock())
        self.db.execute(
            "INSERT INTO enrolments VALUES (?, ?, ?, ?)",
            (e.enrolment_id, e.tunnel_key, e.identity_key, e.added_at),
        )
        return e

    def remove(self, enrolment_id: str) -> bool:
        return self.db.execute("DELETE FROM enrolments WHERE enrolment_id = ?", (enrolment_id,)).rowcount > 0

    def enrolments(self) -> list[Enrolment]:
        rows = self.db.execute("SELECT * FROM enrolments ORDER BY added_at").fetchall()
        return [Enrolment(str(r[0]), bytes(r[1]), bytes(r[2]), float(r[3])) for r in rows]


# ------------------------------------------------------------------------------------------ enrolment


async def offer_enrolment(
    hub_store: HubStore,
    broker_url: str,
    *,
    ttl: float | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> CodeOffer[Enrolment]:
    """Show a code; the owner who types it enrols one band. Single use, 3 minutes, as link codes."""

    def admit(info: dict[str, Any], key: bytes) -> tuple[Enrolment, dict[str, Any]]:
        try:
            ident = hexbytes(info, "ident")
        except ValueError:
            ident = b""
        if len(ident) != adv.ID_KEY_LEN:
            raise LinkError("The app sent no band to serve — update the app")
        e = hub_store.add(tunnel_key(key), ident)
        log.info("enrolled a band (%s)", e.enrolment_id)
        return e, {"enrolment": e.enrolment_id, "name": hub_store.name}

    kwargs: dict[str, Any] = {} if ttl is None else {"ttl": ttl}
    return await offer_code(broker_url, admit, purpose=HUB, tls_context=tls_context, **kwargs)


async def enrol_at_hub(
    code: str,
    store: Store,
    band_id: str,
    broker_url: str,
    *,
    timeout: float = 10.0,
    tls_context: ssl.SSLContext | None = None,
) -> str:
    """The owner: have the hub showing `code` serve this band; returns the enrolment id. The hub gets
    the band's identity key only; the tunnel key is stored with the band."""
    band = store.band(band_id)
    info = {"ident": adv.identity_key(band.key).hex()}
    bundle, key = await join_code(
        code, broker_url, info, purpose=HUB, timeout=timeout, tls_context=tls_context
    )
    enrolment = bundle.get("enrolment")
    if not isinstance(enrolment, str) or not enrolment:
        raise LinkError("The hub answered with no enrolment — update the hub")
    try:
        name = hub_name(bundle.get("name", ""))
    except ValueError:
        name = ""  # a hub's name is only words for the parent: one that is not a name is not shown
    store.save_band_hub(band_id, enrolment, tunnel_key(key), name)
    return enrolment


def hub_name(name: object) -> str:
    """A hub's name as parents see it: printable, at most ``MAX_HUB_NAME`` characters, or ""."""
    if not isinstance(name, str) or not name.isprintable() or len(name.strip()) > MAX_HUB_NAME:
        raise ValueError(f"a hub's name is at most {MAX_HUB_NAME} printable characters")
    return name.strip()


def hub_words(name: str) -> str:
    """A classroom hub as parents read it: "the Class 2 hub", or "the class hub" if it has no name."""
    return f"the {name} hub" if name else "the class hub"


async def leave_hub(store: Store, band_id: str, tunnel: HubTunnel) -> None:
    """The owner: the hub stops serving this band (it forgets the enrolment), and so does this phone.
    If the hub cannot be reached now, this phone forgets it anyway (the operator can remove it)."""
    with contextlib.suppress(BleakError):
        await tunnel.request("bye")
    store.forget_band_hub(band_id)


# ---------------------------------------------------------------------------------------------- hub


@dataclass
class _Served:
    """One enrolled band on a running hub."""

    enrolment: Enrolment
    tunnel: Tunnel
    ident: Hmac
    heard: tuple[BLEDevice, AdvertisementData, float] | None = None
    waiting: bool = False  # its last advert said a press waits on it (readable by this hub only)
    leased_until: float = 0.0
    last_push: float = 0.0
    pushed_address: str = ""
    link: str = ""
    client: BleakClient | None = None
    counter: int = 0
    asked_at: float = 0.0  # when its owner last asked anything about its link
    left: bool = False  # its owner un-enrolled it (bye)
    refused_at: float = float("-inf")  # when a connect to it last failed
    tasks: set[asyncio.Task[None]] = field(default_factory=set[asyncio.Task[None]])


@dataclass
class HubStats:
    requests: int = 0
    rejected: int = 0  # tunnel messages that did not open
    dropped: int = 0  # messages not sent: the out queue was full
    connects: int = 0


class Hub:
    """Serves every enrolled band's owner until cancelled (reconnecting to the broker after a loss)."""

    def __init__(
        self,
        hub_store: HubStore,
        broker_url: str,
        config: BleConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = hub_store
        self.brokers = parse_broker_urls(broker_url)
        self.config = config
        self.tls_context = tls_context
        self.clock = clock
        self.stats = HubStats()
        self.served: dict[str, _Served] = {}  # by the topic its owner writes to
        self.online = asyncio.Event()
        self._out: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=OUT_QUEUE)
        self._subscribed: set[str] = set()
        self._client: aiomqtt.Client | None = None
        self._whose: dict[str, str] = {}  # advertising address -> topic of the band there, or ""

    async def run(self) -> None:
        self._reload()
        tasks = [
            asyncio.ensure_future(self._scan()),
            asyncio.ensure_future(self._broker()),
            asyncio.ensure_future(self._watch_store()),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for served in list(self.served.values()):
                for task in list(served.tasks):
                    task.cancel()
                await self._drop_link(served)

    # ---- enrolments

    def _reload(self) -> list[str]:
        """Take up enrolments added (and let go of those removed) since; the new topics."""
        current = {Tunnel(e.tunnel_key, UP, self.clock).in_topic: e for e in self.store.enrolments()}
        for gone in set(self.served) - set(current):
            served = self.served.pop(gone)
            if not served.left:  # removed by the operator: its owner stops coming (sealed: only it reads)
                self._send(served, {"t": "removed"})
            task = asyncio.ensure_future(self._drop_link(served))
            served.tasks.add(task)
        if set(current) != set(self.served):
            self._whose.clear()
        for t, e in current.items():
            if t not in self.served:
                self.served[t] = _Served(e, Tunnel(e.tunnel_key, UP, self.clock), Hmac(e.identity_key))
        return sorted(set(self.served) - self._subscribed)

    def status(self) -> dict[str, Any]:
        """What the hub's operator sees: counts, no family data."""
        now = self.clock()
        served = list(self.served.values())
        return {
            "at": now,
            "online": self.online.is_set(),
            "enrolled": len(served),
            "heard": sum(1 for s in served if s.heard is not None and now - s.heard[2] < HEARD_S),
            "links": sum(1 for s in served if s.link),
            "queue": self._out.qsize(),
            **asdict(self.stats),
        }

    async def _watch_store(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.store.write_status(self.status())
            await asyncio.sleep(RELOAD_S)
            self._let_go_unasked()
            new = self._reload()
            client = self._client
            if new and client is not None:
                with contextlib.suppress(aiomqtt.MqttError):
                    for t in new:
                        await client.subscribe(t, qos=1)
                        self._subscribed.add(t)

    def _let_go_unasked(self) -> None:
        now = self.clock()
        for served in self.served.values():
            if served.link and now - served.asked_at > OWNER_SILENT_S:
                log.info("hub: %s's owner stopped asking; letting its link go", served.enrolment.enrolment_id)
                task = asyncio.ensure_future(self._drop_link(served))
                served.tasks.add(task)
                task.add_done_callback(served.tasks.discard)

    # ---- the radio

    async def _scan(self) -> None:
        scanner = BleakScanner(
            self._on_advert, service_uuids=[gatt.HUG_SERVICE_UUID], **self.config.scanner_kwargs()
        )
        async with scanner:
            await asyncio.Event().wait()

    def _recognise(self, device: BLEDevice, data: AdvertisementData) -> _Served | None:
        """The enrolled band behind an advert, if any, with its waiting bit noted: two HMACs for an
        address seen before, two per enrolment for a new one."""
        topic = self._whose.get(device.address)
        if topic == "":
            return None
        if topic is not None:
            served = self.served.get(topic)
            if served is not None and self._note_waiting(served, device, data):
                return served
        for t, served in self.served.items():
            if self._note_waiting(served, device, data):
                self._remember(device.address, t)
                return served
        self._remember(device.address, "")
        return None

    def _note_waiting(self, served: _Served, device: BLEDevice, data: AdvertisementData) -> bool:
        waiting = band_waiting(served.ident, device, data)
        if waiting >= 0:
            served.waiting = waiting == 1
        return waiting >= 0

    def _remember(self, address: str, topic: str) -> None:
        if len(self._whose) >= WHOSE_CACHE:
            self._whose.clear()
        self._whose[address] = topic

    def _on_advert(self, device: BLEDevice, data: AdvertisementData) -> None:
        now = self.clock()
        served = self._recognise(device, data)
        if served is not None:
            served.heard = (device, data, now)
            moved = device.address != served.pushed_address
            if now < served.leased_until and (moved or now - served.last_push >= ADV_EVERY_S):
                self._push_advert(served, device, data, now)

    def _push_advert(self, served: _Served, device: BLEDevice, data: AdvertisementData, now: float) -> None:
        served.last_push, served.pushed_address = now, device.address
        manufacturer = {str(k): v.hex() for k, v in data.manufacturer_data.items()}
        self._send(
            served,
            {"t": "adv", "a": device.address, "r": data.rssi, "d": manufacturer, "u": data.service_uuids},
        )

    # ---- the broker

    def _send(self, served: _Served, msg: dict[str, Any]) -> None:
        try:
            self._out.put_nowait((served.tunnel.out_topic, served.tunnel.seal(msg)))
        except asyncio.QueueFull:
            self.stats.dropped += 1

    async def _broker(self) -> None:
        while True:
            try:
                async with connect_any(
                    self.brokers,
                    self.tls_context,
                    identifier="hug-hub-" + secrets.token_hex(8),
                    clean_session=True,
                ) as client:
                    self._subscribed.clear()
                    for t in sorted(self.served):
                        await client.subscribe(t, qos=1)
                        self._subscribed.add(t)
                    self._client = client
                    sender = asyncio.ensure_future(self._publish(client))
                    probe = min(self._subscribed, default=None)
                    try:
                        async for message in delivering(client, probe, self.online):
                            self._receive(str(message.topic), bytes(message.payload))
                    finally:
                        sender.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await sender
            except NotDelivering as exc:
                log.warning("hub: %s; trying the next node", exc)
                self.brokers = exc.next_first(self.brokers)
            except aiomqtt.MqttError as exc:
                log.info("hub: broker lost: %s", exc)
            finally:
                self._client = None
                self.online.clear()
            await asyncio.sleep(1.0)

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            t, data = await self._out.get()
            await publish(client, t, data)

    def _receive(self, t: str, data: bytes) -> None:
        served = self.served.get(t)
        if served is None:
            return
        try:
            msg = served.tunnel.open(data)
        except EnvelopeError as exc:
            self.stats.rejected += 1
            log.warning("hub: dropped a message for %s (%s)", served.enrolment.enrolment_id, exc)
            return
        self.stats.requests += 1
        if msg["t"] == "scan":
            self._lease(served)
            return
        served.asked_at = self.clock()
        task = asyncio.ensure_future(self._answer(served, msg))
        served.tasks.add(task)
        task.add_done_callback(served.tasks.discard)

    def _lease(self, served: _Served) -> None:
        now = self.clock()
        fresh = served.leased_until < now  # a new scan: tell it at once what was heard last
        served.leased_until = now + SCAN_LEASE_S
        heard = served.heard
        if fresh and heard is not None and now - heard[2] < ADVERT_FRESH_S:
            self._push_advert(served, heard[0], heard[1], now)

    async def _answer(self, served: _Served, msg: dict[str, Any]) -> None:
        rid = msg.get("i")
        answer: dict[str, Any]
        try:
            answer = await self._serve(served, msg)
        except (BleakError, TimeoutError, OSError, ValueError, KeyError, TypeError) as exc:
            answer = {"e": str(exc) or type(exc).__name__}
        if self._crowded(served):
            answer["busy"] = 1
        self._send(served, {"t": "re", "i": rid, **answer})

    async def _serve(self, served: _Served, msg: dict[str, Any]) -> dict[str, Any]:
        kind = msg["t"]
        if kind == "connect":
            return await self._connect(served, str(msg["a"]), float(msg.get("w", 10.0)))
        if kind == "bye":
            served.left = True
            self.store.remove(served.enrolment.enrolment_id)
            self._reload()
            return {}
        if not served.link or msg.get("l") != served.link or served.client is None:
            raise BleakError("no such link")
        client = served.client
        if kind == "ping":
            return {}
        if kind == "disc":
            await self._drop_link(served)
            return {}
        char = _char(client, int(msg["h"]))
        if kind == "read":
            return {"v": bytes(await client.read_gatt_char(char)).hex()}
        if kind == "write":
            await client.write_gatt_char(char, hexbytes(msg, "v"), response=bool(msg.get("r", True)))
            return {}
        if kind == "sub":
            link = served.link

            def forward(_c: BleakGATTCharacteristic, value: bytearray) -> None:
                if served.link == link:
                    served.counter += 1
                    self._send(
                        served, {"t": "n", "l": link, "k": served.counter, "h": char.handle, "v": value.hex()}
                    )

            await client.start_notify(char, forward)
            return {}
        raise ValueError(f"unknown request {kind!r}")

    def _crowded(self, asking: _Served) -> bool:
        """Another band waits for a link: it has none, and its advert says a press waits or a connect
        to it just failed. Owners then let idle links go sooner (a real radio holds few links)."""
        now = self.clock()
        return any(
            s is not asking
            and not s.link
            and (
                now - s.refused_at < CROWDED_S
                or (s.waiting and s.heard is not None and now - s.heard[2] < ADVERT_FRESH_S)
            )
            for s in self.served.values()
        )

    async def _connect(self, served: _Served, address: str, timeout: float) -> dict[str, Any]:
        heard = served.heard
        if heard is None or heard[0].address != address or self.clock() - heard[2] > ADVERT_FRESH_S:
            raise BleakError("the band is not in range of the hub")  # only ever the enrolled band
        await self._drop_link(served)
        link = secrets.token_hex(8)

        def lost(_c: BleakClient) -> None:
            if served.link == link:
                served.link, served.client = "", None
                self._send(served, {"t": "gone", "l": link})

        client = BleakClient(
            heard[0],
            disconnected_callback=lost,
            timeout=min(timeout, CONNECT_LIMIT_S),
            **self.config.client_kwargs(),
        )
        try:
            await client.connect()
        except (BleakError, TimeoutError, OSError):
            served.refused_at = self.clock()  # (at its link limit, most likely) others should make room
            raise
        served.link, served.client, served.counter = link, client, 0
        served.asked_at = self.clock()
        self.stats.connects += 1
        return {"l": link, "s": _table(client), "mtu": client.mtu_size}

    async def _drop_link(self, served: _Served) -> None:
        client, link = served.client, served.link
        served.client, served.link = None, ""
        if client is not None:
            with contextlib.suppress(BleakError, TimeoutError, OSError):
                await client.disconnect()
            self._send(served, {"t": "gone", "l": link})


def _char(client: BleakClient, handle: int) -> BleakGATTCharacteristic:
    char = client.services.get_characteristic(handle)
    if char is None:
        raise BleakError(f"no characteristic {handle}")
    return char


def _table(client: BleakClient) -> list[dict[str, Any]]:
    """The band's GATT table for the owner's bleak: uuids, handles, properties."""
    return [
        {
            "u": s.uuid,
            "h": s.handle,
            "c": [
                {
                    "u": c.uuid,
                    "h": c.handle,
                    "p": list(c.properties),
                    "d": [{"u": d.uuid, "h": d.handle} for d in c.descriptors],
                }
                for c in s.characteristics
            ],
        }
        for s in client.services
    ]


async def run_hub(folder: Path, broker_url: str, config: BleConfig) -> None:
    hub_store = HubStore(folder)
    try:
        count = len(hub_store.enrolments())
        print(f"Hug Button hub serving {count} band(s) through {broker_url} (Ctrl-C to stop)", flush=True)
        await Hub(hub_store, broker_url, config).run()
    finally:
        hub_store.close()


async def enrol_once(folder: Path, broker_url: str) -> int:
    hub_store = HubStore(folder)
    try:
        offer = await offer_enrolment(hub_store, broker_url)
        print(f"Enrol a band: in the app, {HUB.where}, type {offer.code} (or scan this)", flush=True)
        print(offer.qr_terminal(), end="", flush=True)
        print(offer.qr_text(), flush=True)
        try:
            e = await offer.wait()
        except LinkError as exc:
            print(f"hugbutton hub: {exc}", flush=True)
            return 1
        print(f"enrolled: {e.enrolment_id}", flush=True)
        return 0
    finally:
        hub_store.close()
