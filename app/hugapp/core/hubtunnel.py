"""The tunnel between a classroom hub and a band's owner: the band's GATT traffic, sealed, over the broker.

    owner: BandLink -> bleak -> HubBleakClient ==> hug/v1/hub/<down> ==> hub: Hub -> bleak -> band
                                               <== hug/v1/hub/<up>   <==

The owner drives the band with its unchanged BandLink through a bleak backend (``HubTunnel.config()``
gives the scanner and client classes for bleak's ``backend=``): authentication, exactly-once and
dedup stay in the band link. The band's frames are encrypted and MACed under its session keys
(protocol 2), so the hub carries bytes it cannot read or forge.

Keys and topics: enrolment (``hugapp.core.hub``) gives hub and owner a 32-byte tunnel key. Each
direction has its own topic and sealing key derived from it; topics are hex and name no one. A message
is JSON ``{"m": id, "at": sent-at, "t": type, ...}`` sealed (``envelope.seal_bytes``) with its topic as
associated data. A receiver drops a message older than ``MAX_AGE_S`` or whose id it has seen, so the
broker cannot replay a request; bytes are hex.

Owner -> hub (requests carry "i", a request id): scan (a lease: the band's adverts for
``SCAN_LEASE_S``, no answer), connect {a: address, w: timeout}, read/write/sub {l: link, h: handle,
v: value, r: with response}, ping {l}, disc {l}, bye (un-enrol). Hub -> owner: re {i, e: error if
any, ...}, adv {a, r: rssi, d: manufacturer data, u: service uuids}, n {l, k: counter in the link, h,
v}, gone {l}, removed (the hub's operator removed the band). An answer carries busy: 1 while other
bands wait for the hub's few links (the owner then lets an idle link go sooner).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, cast

import aiomqtt
from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError

from hugapp.core.bandlink import BleConfig
from hugapp.core.envelope import TOPIC_ROOT, EnvelopeError, Garbled, Replayed, open_bytes, seal_bytes
from hugapp.core.relay import NotDelivering, connect_any, delivering, parse_broker_urls, publish

log = logging.getLogger("hugapp.hubtunnel")

MAX_AGE_S = 60.0  # a tunnel message older (or newer) than this, by the receiver's clock, is dropped
MAX_MESSAGE = 2048  # bytes sealed; a GATT table is the largest (~1 KB)
SEEN_IDS = 4096  # message ids remembered per direction, for replays within MAX_AGE_S
SCAN_LEASE_S = 3.0  # the hub forwards a band's adverts this long after each scan request
SCAN_RENEW_S = 1.0  # the owner renews its lease this often while it scans
ADV_EVERY_S = 0.5  # at most one advert per band per this while leased (a new address at once)
PING_S = 2.0  # the owner checks a link through the hub this often ...
PING_TIMEOUT_S = 4.0  # ... and calls it lost when the hub does not answer within this
RPC_TIMEOUT_S = 8.0
DOWN, UP = "down", "up"  # owner -> hub, hub -> owner


def _derive(key: bytes, label: str) -> bytes:
    return hmac.new(key, b"hugbutton/v1 hub " + label.encode(), hashlib.sha256).digest()


def topic(tunnel_key: bytes, direction: str) -> str:
    """One direction's topic: from the tunnel key, known to the hub and the owner only."""
    return f"{TOPIC_ROOT}/hub/{_derive(tunnel_key, 'topic ' + direction).hex()}"


class Tunnel:
    """Sealing and opening one enrolment's messages, on one side (``UP`` for the hub's)."""

    def __init__(self, tunnel_key: bytes, sends: str, clock: Callable[[], float] = time.time) -> None:
        receives = DOWN if sends == UP else UP
        self.out_topic, self.in_topic = topic(tunnel_key, sends), topic(tunnel_key, receives)
        self._out_key, self._in_key = (
            _derive(tunnel_key, "seal " + sends),
            _derive(tunnel_key, "seal " + receives),
        )
        self._clock = clock
        self._seen: OrderedDict[str, None] = OrderedDict()

    def seal(self, msg: dict[str, Any]) -> bytes:
        body = {"m": secrets.token_hex(12), "at": self._clock(), **msg}
        return seal_bytes(
            self._out_key, self.out_topic.encode(), json.dumps(body, separators=(",", ":")).encode()
        )

    def open(self, data: bytes) -> dict[str, Any]:
        """A message from the other side; raises EnvelopeError (Garbled, Forged, Replayed)."""
        plain = open_bytes(self._in_key, self.in_topic.encode(), data, MAX_MESSAGE)
        try:
            msg: Any = json.loads(plain)
        except (ValueError, RecursionError):
            raise Garbled("not JSON") from None
        if not isinstance(msg, dict):
            raise Garbled("not an object")
        body = cast(dict[str, Any], msg)
        mid, at, kind = body.get("m"), body.get("at"), body.get("t")
        if not isinstance(mid, str) or not isinstance(at, int | float) or not isinstance(kind, str):
            raise Garbled("no id, time or type")
        if abs(self._clock() - at) > MAX_AGE_S:
            raise Replayed("too old (or from the future)")
        if mid in self._seen:
            raise Replayed("seen before")
        self._seen[mid] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        return body


def hexbytes(msg: dict[str, Any], name: str) -> bytes:
    """A hex field of a message, or ValueError."""
    v = msg.get(name)
    if not isinstance(v, str):
        raise ValueError(f"{name} missing")
    return bytes.fromhex(v)


# ------------------------------------------------------------------------------------ owner side


class HubTunnel:
    """The owner's end of one enrolment: run() keeps it on the broker; config() is what BandLink
    takes to reach the band through the hub."""

    def __init__(
        self,
        broker_url: str,
        tunnel_key: bytes,
        *,
        tls_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        rpc_timeout: float = RPC_TIMEOUT_S,
    ) -> None:
        self.brokers = parse_broker_urls(broker_url)
        self.tunnel = Tunnel(tunnel_key, DOWN, clock)
        self.tls_context = tls_context
        self.rpc_timeout = rpc_timeout
        self.online = asyncio.Event()
        self.rejected = 0  # messages that did not open (forged, replayed, garbled)
        self.scanners: set[HubBleakScanner] = set()
        self.links: dict[str, HubBleakClient] = {}
        self._client: aiomqtt.Client | None = None
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        scanner = type("HubBleakScanner", (HubBleakScanner,), {"hub": self, "__module__": __name__})
        client = type("HubBleakClient", (HubBleakClient,), {"hub": self, "__module__": __name__})
        self._config = BleConfig(scanner, client, via="hub", crowded=self.crowded)
        self.crowded_until = 0.0  # monotonic: the hub's last answer said other bands wait for a link
        self.on_removed: Callable[[], None] = lambda: None  # the hub's operator removed the band

    def config(self) -> BleConfig:
        return self._config

    def crowded(self) -> bool:
        return time.monotonic() < self.crowded_until

    async def run(self) -> None:
        """Stay connected to the broker (reconnecting after a loss) until cancelled."""
        while True:
            try:
                async with connect_any(
                    self.brokers,
                    self.tls_context,
                    identifier="hug-hubt-" + secrets.token_hex(8),
                    clean_session=True,
                ) as client:
                    await client.subscribe(self.tunnel.in_topic, qos=1)
                    self._client = client
                    async for message in delivering(client, self.tunnel.in_topic, self.online):
                        self._dispatch(bytes(message.payload))
            except NotDelivering as exc:
                log.warning("hub tunnel: %s; trying the next node", exc)
                self.brokers = exc.next_first(self.brokers)
            except aiomqtt.MqttError as exc:
                log.info("hub tunnel: broker lost: %s", exc)
            finally:
                self._client = None
                self.online.clear()
            await asyncio.sleep(1.0)

    async def send(self, msg: dict[str, Any]) -> None:
        """Publish one message to the hub; BleakError when the broker is not reachable now."""
        client = self._client
        if client is None:
            raise BleakError("the hub is not reachable: no broker connection")
        try:
            await publish(client, self.tunnel.out_topic, self.tunnel.seal(msg))
        except aiomqtt.MqttError as exc:
            raise BleakError(f"the hub is not reachable: {exc}") from exc

    async def request(self, kind: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Ask the hub and wait for its answer; BleakError if it refuses or does not answer."""
        rid = secrets.token_hex(8)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[rid] = answer
        try:
            await self.send({"t": kind, "i": rid, **fields})
            async with asyncio.timeout(timeout or self.rpc_timeout):
                re = await answer
        except TimeoutError:
            raise BleakError(f"the hub did not answer ({kind})") from None
        finally:
            self._answers.pop(rid, None)
        error = re.get("e")
        if error is not None:
            raise BleakError(f"the hub: {error}")
        return re

    def _dispatch(self, data: bytes) -> None:
        try:
            msg = self.tunnel.open(data)
        except EnvelopeError as exc:
            self.rejected += 1
            log.warning("hub tunnel: dropped a message (%s)", exc)
            return
        kind = msg["t"]
        if kind == "re":
            # each answer says whether other bands wait for the hub's links (until the next answer)
            self.crowded_until = time.monotonic() + PING_S + PING_TIMEOUT_S if msg.get("busy") else 0.0
            answer = self._answers.get(str(msg.get("i")))
            if answer is not None and not answer.done():
                answer.set_result(msg)
        elif kind == "adv":
            for scanner in list(self.scanners):
                scanner.handle_advert(msg)
        elif kind == "removed":
            log.info("hub tunnel: the hub's operator removed the band")
            self.on_removed()
        elif kind in ("n", "gone"):
            client = self.links.get(str(msg.get("l")))
            if client is None:
                return
            if kind == "gone":
                client.handle_gone()
            else:
                client.handle_notification(msg)


class HubBleakScanner(BaseBleakScanner):
    """bleak scanner backend: the adverts of the enrolled band, as the hub hears them."""

    hub: ClassVar[HubTunnel]

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._lease: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self.hub.scanners.add(self)
        self._lease = asyncio.ensure_future(self._renew())

    async def stop(self) -> None:
        self.hub.scanners.discard(self)
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease

    async def _renew(self) -> None:
        while True:
            with contextlib.suppress(BleakError):  # the broker is away: the next renewal may reach it
                await self.hub.send({"t": "scan"})
            await asyncio.sleep(SCAN_RENEW_S)

    def handle_advert(self, msg: dict[str, Any]) -> None:
        try:
            address, rssi = str(msg["a"]), int(msg["r"])
            raw_uuids: list[Any] = list(msg.get("u", []))
            uuids = [str(u) for u in raw_uuids]
            raw_data = cast(dict[str, Any], msg.get("d", {}))
            manufacturer = {int(k): bytes.fromhex(str(v)) for k, v in raw_data.items()}
        except (KeyError, ValueError, TypeError):
            return
        if not self.is_allowed_uuid(uuids):
            return
        data = AdvertisementData(
            local_name=None,
            manufacturer_data=manufacturer,
            service_data={},
            service_uuids=uuids,
            tx_power=None,
            rssi=rssi,
            platform_data=(),
        )
        device = self.create_or_update_device(address, address, None, {"via": "hub"}, data)
        self.call_detection_callbacks(device, data)


def _services(table: Any, mtu: int) -> BleakGATTServiceCollection:
    """The band's GATT table as the hub sent it, as bleak's own objects."""
    collection = BleakGATTServiceCollection()

    def mtu_room() -> int:  # what a write without response may carry
        return mtu - 3

    for svc in cast(list[dict[str, Any]], table):
        service = BleakGATTService(None, int(svc["h"]), str(svc["u"]))
        collection.add_service(service)
        for ch in cast(list[dict[str, Any]], svc["c"]):
            char = BleakGATTCharacteristic(
                None, int(ch["h"]), str(ch["u"]), [cast(Any, str(p)) for p in ch["p"]], mtu_room, service
            )
            collection.add_characteristic(char)
            for d in cast(list[dict[str, Any]], ch.get("d", [])):
                collection.add_descriptor(BleakGATTDescriptor(None, int(d["h"]), str(d["u"]), char))
    return collection


class HubBleakClient(BaseBleakClient):
    """bleak client backend: a link to the enrolled band held by the hub, every operation a request."""

    hub: ClassVar[HubTunnel]

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        services: set[str] | None = None,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._link = ""
        self._counter = -1
        self._mtu = 23
        self._notify: dict[int, NotifyCallback] = {}
        self._pinger: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._mtu

    @property
    def is_connected(self) -> bool:
        return bool(self._link)

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._link:
            raise BleakError("Client is already connected")
        timeout = float(kwargs.get("timeout", self._timeout))
        re = await self.hub.request("connect", timeout + PING_TIMEOUT_S, a=self.address, w=timeout)
        try:
            mtu = int(re.get("mtu", 23))
            link, services = str(re["l"]), _services(re["s"], mtu)
        except (KeyError, ValueError, TypeError) as exc:
            raise BleakError(f"the hub sent a GATT table this app cannot read: {exc}") from None
        self._link, self._counter, self._mtu, self.services = link, -1, mtu, services
        self.hub.links[link] = self
        self._pinger = asyncio.ensure_future(self._ping())

    async def disconnect(self) -> None:
        link = self._link
        if not link:
            return
        with contextlib.suppress(BleakError):
            await self.hub.request("disc", l=link)
        self.handle_gone()

    async def _ping(self) -> None:
        while self._link:
            await asyncio.sleep(PING_S)
            try:
                await self.hub.request("ping", PING_TIMEOUT_S, l=self._link)
            except BleakError as exc:
                log.info("hub link %s lost: %s", self._link, exc)
                self.handle_gone()

    def handle_gone(self) -> None:
        """The hub's link to the band is down (or the hub is away): once per link."""
        link, self._link = self._link, ""
        if not link:
            return
        self.hub.links.pop(link, None)
        self._notify.clear()
        pinger, self._pinger = self._pinger, None
        if pinger is not None and pinger is not asyncio.current_task():
            pinger.cancel()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    def handle_notification(self, msg: dict[str, Any]) -> None:
        try:
            counter, handle, value = int(msg["k"]), int(msg["h"]), hexbytes(msg, "v")
        except (KeyError, ValueError, TypeError):
            return
        if counter <= self._counter:  # a repeat within the link: the band's session drops it anyway
            return
        self._counter = counter
        callback = self._notify.get(handle)
        if callback is not None:
            callback(bytearray(value))

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("Hug bands pair in the app layer, next to the phone, not through a hub")

    async def unpair(self) -> None:
        raise NotImplementedError("Hug bands pair in the app layer, next to the phone, not through a hub")

    def _need_link(self) -> str:
        if not self._link:
            raise BleakError("Not connected")
        return self._link

    async def _read(self, handle: int) -> bytearray:
        re = await self.hub.request("read", l=self._need_link(), h=handle)
        try:
            return bytearray(hexbytes(re, "v"))
        except ValueError as exc:
            raise BleakError(f"the hub sent an unreadable value: {exc}") from None

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(characteristic.handle)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(descriptor.handle)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        await self.hub.request(
            "write", l=self._need_link(), h=characteristic.handle, v=bytes(data).hex(), r=response
        )

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        await self.hub.request("write", l=self._need_link(), h=descriptor.handle, v=bytes(data).hex(), r=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        link = self._need_link()
        self._notify[characteristic.handle] = callback
        try:
            await self.hub.request("sub", l=link, h=characteristic.handle)
        except BaseException:
            self._notify.pop(characteristic.handle, None)
            raise

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._notify.pop(characteristic.handle, None)
