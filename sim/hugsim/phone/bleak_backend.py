"""A bleak backend that reaches the airspace, passed through bleak's documented ``backend=`` argument.

    from hugsim.phone.bleak_backend import airspace_backend

    Scanner, Client = airspace_backend("127.0.0.1:PORT", central_name="child-phone")
    found = await BleakScanner.discover(2.0, backend=Scanner, return_adv=True)
    async with BleakClient(device, backend=Client) as client:
        await client.start_notify(EVENT_CHAR_UUID, on_event)

The app is unmodified bleak code: it only chooses which backend classes to pass (configuration, not a
"simulation" branch). Everything below bleak's public API is here:

* One radio per phone: every scanner and client made from the same ``airspace_backend(addr, name)``
  classes in the same event loop shares ONE ``AirspaceCentral`` (created lazily on first use), so a
  phone can scan while connected and hold links to several bands at once. The shared central is closed
  when its event loop shuts down (``asyncio.run`` cancels the radio's keeper task) or by
  ``await close_airspace_backends()``; nothing is carried from one ``asyncio.run`` to the next.
* Handles: a characteristic's ``handle`` is the airspace's GATT *value* handle (what reads, writes and
  notifications address); descriptors carry their own handles. The app should use UUIDs or the
  characteristic objects, never raw handles (BlueZ reports declaration handles, CoreBluetooth none).
* Properties are bleak's names (``"read"``, ``"write"``, ``"write-without-response"``, ``"notify"``,
  ``"indicate"``...) from bleak's own bit table.
* Errors are bleak's, translated at this boundary: ``BleakGATTProtocolError`` (ATT error from the band),
  ``BleakDeviceNotFoundError`` (not advertising in range before the connect timeout; also a
  ``TimeoutError``), ``BleakError("Not connected")``, ``BleakBluetoothNotAvailableError`` (the airspace
  cannot be reached: no radio), ``AirspaceBleakTimeoutError`` (a ``BleakError`` and a ``TimeoutError``).
* Like BlueZ, the disconnected callback runs on every disconnect, requested or not, once per link.
* Like BlueZ and the phones, a connect negotiates the ATT MTU (517 requested unless configured).
* Not supported: BLE pairing/bonding (``pair``/``unpair`` raise ``NotImplementedError``; ``pair=True``
  on connect is logged and ignored, as bleak asks of backends that cannot pair: the Hug protocol pairs
  at the application layer), passive-scan ``or_patterns``, two ``BleakClient``s to the same band on one
  phone at once (a clear ``BleakError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Generator
from typing import Any, ClassVar, Literal

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
)

from hugsim.airspace import wire
from hugsim.airspace.central import Advert, AirspaceCentral, Connection

__all__ = [
    "AirspaceBleakClient",
    "AirspaceBleakScanner",
    "AirspaceBleakTimeoutError",
    "AirspaceDeviceNotFoundError",
    "airspace_backend",
    "close_airspace_backends",
    "open_radio_count",
]

logger = logging.getLogger(__name__)

DEFAULT_MTU_REQUEST = 517  # what BlueZ and Android ask for
_DEFAULT_MTU = wire.DEFAULT_MTU
_DISCONNECT_WAIT_S = 10.0


class AirspaceBleakTimeoutError(BleakError, TimeoutError):
    """An airspace operation did not complete in time (catchable as BleakError or TimeoutError)."""


class AirspaceDeviceNotFoundError(BleakDeviceNotFoundError, TimeoutError):
    """The band did not advertise connectably in range before the connect timeout."""


# ----------------------------------------------------------------------------------------------------
# Error translation at the boundary


def _bleak_error(exc: wire.AirspaceError, what: str) -> BleakError:
    if isinstance(exc, wire.GattError):
        return BleakGATTProtocolError(exc.att)
    if isinstance(exc, wire.NotConnectedError):
        return BleakError("Not connected (%s): %s" % (what, exc))
    if isinstance(exc, wire.AirspaceTimeoutError):
        return AirspaceBleakTimeoutError("%s timed out: %s" % (what, exc))
    return BleakError("%s failed: %s" % (what, exc))


@contextlib.contextmanager
def _bleak_errors(what: str) -> Generator[None]:
    try:
        yield
    except wire.AirspaceError as exc:
        raise _bleak_error(exc, what) from exc


# ----------------------------------------------------------------------------------------------------
# One radio per (event loop, airspace, phone name)

_RadioKey = tuple[asyncio.AbstractEventLoop, str, str | None]
_radios: dict[_RadioKey, _Radio] = {}


class _Radio:
    """The phone's one radio: a shared AirspaceCentral, its scan multiplexed over bleak scanners and
    its links handed to bleak clients. A keeper task owns the central's lifetime."""

    def __init__(self, key: _RadioKey) -> None:
        self.key = key
        loop, airspace_addr, name = key
        self.central = AirspaceCentral(airspace_addr, name=name)
        self.scanners: set[AirspaceBleakScanner] = set()
        self.clients: dict[str, AirspaceBleakClient] = {}
        self.names: dict[str, str] = {}  # local names heard on the air, by address
        self._scan_lock = asyncio.Lock()
        self._scanning = False
        self._abandoned: set[asyncio.Task[Any]] = set()  # connects given up by their caller
        self._started: asyncio.Future[None] = loop.create_future()
        self._stop = asyncio.Event()
        self._keeper = loop.create_task(self._keep(), name="airspace-radio %s %s" % (airspace_addr, name))

    @property
    def dead(self) -> bool:
        return self._keeper.done() or (self._started.done() and self.central.closed)

    async def _keep(self) -> None:
        try:
            try:
                await self.central.start()
            except (wire.AirspaceError, OSError) as exc:
                self._started.set_exception(exc)
                return
            self._started.set_result(None)
            await self._stop.wait()
        finally:
            if _radios.get(self.key) is self:
                del _radios[self.key]
            if not self._started.done():
                self._started.set_exception(wire.NotConnectedError("the phone radio was shut down"))
            await self.central.close()

    async def ready(self) -> None:
        try:
            await asyncio.shield(self._started)
        except wire.AirspaceError as exc:
            raise BleakBluetoothNotAvailableError(
                "no radio: cannot reach the airspace at %s (%s)" % (self.key[1], exc),
                BleakBluetoothNotAvailableReason.NO_BLUETOOTH,
            ) from exc

    async def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._keeper

    # ----- scanning, shared by every scanner of this phone -----

    async def add_scanner(self, scanner: AirspaceBleakScanner) -> None:
        async with self._scan_lock:
            self.scanners.add(scanner)
            try:
                # (Re)starting reports every advert already on the air at once, also to a new scanner
                # joining a scan that is running.
                await self.central.start_scan(self._on_advert, active=True)
            except BaseException:
                self.scanners.discard(scanner)
                raise
            self._scanning = True

    async def remove_scanner(self, scanner: AirspaceBleakScanner) -> None:
        async with self._scan_lock:
            self.scanners.discard(scanner)
            if not self.scanners and self._scanning:
                self._scanning = False
                if not self.central.closed:
                    await self.central.stop_scan()

    def _on_advert(self, advert: Advert) -> None:
        name = advert.local_name
        if name:
            self.names[advert.address] = name
        for scanner in list(self.scanners):
            scanner.handle_advert(advert)

    # ----- links -----

    async def connect(self, address: str, timeout: float) -> Connection:
        """Connect; if the caller gives up (cancelled) while the airspace is still connecting, the
        link is torn down as soon as it comes up, so no band is left connected to nobody (what
        bleak's BlueZ backend does by calling Disconnect to cancel a pending Connect)."""
        attempt = asyncio.get_running_loop().create_task(
            self.central.connect(address, timeout=timeout, disconnected_callback=self.on_link_dropped)
        )
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            self._abandoned.add(attempt)
            attempt.add_done_callback(self._abandoned_done)
            raise

    def _abandoned_done(self, attempt: asyncio.Task[Connection]) -> None:
        self._abandoned.discard(attempt)
        if attempt.cancelled() or attempt.exception() is not None:
            return
        conn = attempt.result()
        owner = self.clients.get(conn.address)
        if owner is None or owner.link is not conn:
            task = asyncio.get_running_loop().create_task(_disconnect_quietly(conn))
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)

    def on_link_dropped(self, conn: Connection) -> None:
        client = self.clients.get(conn.address)
        if client is not None and client.link is conn:
            del self.clients[conn.address]
            client.handle_disconnected()


async def _disconnect_quietly(conn: Connection) -> None:
    with contextlib.suppress(wire.AirspaceError):
        await conn.disconnect()


def _purge_closed_loops() -> None:
    for key in [k for k in _radios if k[0].is_closed()]:
        del _radios[key]


async def _radio_for(airspace_addr: str, central_name: str | None) -> _Radio:
    if not airspace_addr:
        raise BleakError("unbound airspace backend: use hugsim.phone.bleak_backend.airspace_backend(addr)")
    loop = asyncio.get_running_loop()
    _purge_closed_loops()
    key: _RadioKey = (loop, airspace_addr, central_name)
    radio = _radios.get(key)
    if radio is not None and radio.dead:
        await radio.close()
        radio = None
    if radio is None:
        radio = _Radio(key)
        _radios[key] = radio
    await radio.ready()
    return radio


def open_radio_count() -> int:
    """How many shared phone radios are open (across event loops that are not closed)."""
    _purge_closed_loops()
    return len(_radios)


async def close_airspace_backends() -> None:
    """Close every shared phone radio of the running event loop (their links drop, scans stop)."""
    loop = asyncio.get_running_loop()
    for key, radio in list(_radios.items()):
        if key[0] is loop:
            await radio.close()


# ----------------------------------------------------------------------------------------------------
# Scanner


class AirspaceBleakScanner(BaseBleakScanner):
    """bleak scanner backend over the airspace. Use the subclasses from :func:`airspace_backend`."""

    airspace_addr: ClassVar[str] = ""
    central_name: ClassVar[str | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        **kwargs: Any,  # bluez=, cb=: other platforms' arguments, ignored as other backends do
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"
        self._radio: _Radio | None = None

    async def start(self) -> None:
        if self._radio is not None:
            raise BleakError("Scanner already started")
        radio = await _radio_for(self.airspace_addr, self.central_name)
        self.seen_devices = {}
        with _bleak_errors("start scanning"):
            await radio.add_scanner(self)
        self._radio = radio

    async def stop(self) -> None:
        radio, self._radio = self._radio, None
        if radio is not None:
            with _bleak_errors("stop scanning"):
                await radio.remove_scanner(self)

    def handle_advert(self, advert: Advert) -> None:
        """One advertising report heard by the phone's radio."""
        if not self._active and advert.resp is not None:
            advert = dataclasses.replace(advert, resp=None)  # passive scanning sends no scan request
        service_uuids = advert.service_uuids
        if not self.is_allowed_uuid(service_uuids):
            return
        local_name = advert.local_name
        adv = AdvertisementData(
            local_name=local_name,
            manufacturer_data=advert.manufacturer_data,
            service_data=advert.service_data,
            service_uuids=service_uuids,
            tx_power=advert.tx_power,
            rssi=advert.rssi,
            platform_data=(advert,),
        )
        details = {"airspace": self.airspace_addr, "advert": advert}
        device = self.create_or_update_device(advert.address, advert.address, local_name, details, adv)
        self.call_detection_callbacks(device, adv)


# ----------------------------------------------------------------------------------------------------
# Client


def _properties(bits: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in CHARACTERISTIC_PROPERTIES.items() if bits & bit]


class AirspaceBleakClient(BaseBleakClient):
    """bleak client backend over the airspace. Use the subclasses from :func:`airspace_backend`."""

    airspace_addr: ClassVar[str] = ""
    central_name: ClassVar[str | None] = None
    mtu_request: ClassVar[int | None] = DEFAULT_MTU_REQUEST

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        services: set[str] | None = None,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        **kwargs: Any,  # bluez=, winrt=: other platforms' arguments, ignored as other backends do
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._device_name = (
            address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._requested_services = services
        self._radio: _Radio | None = None
        self._conn: Connection | None = None
        self._notify: dict[int, NotifyCallback] = {}
        self._values: dict[int, bytes] = {}  # last value read or notified, by handle (use_cached)

    # ----- connectivity -----

    @property
    def name(self) -> str:
        if self._device_name:
            return self._device_name
        if self._radio is not None:
            heard = self._radio.names.get(self._address_key())
            if heard:
                return heard
        return self.address.replace(":", "-")

    @property
    def link(self) -> Connection | None:
        """The airspace connection of the current (or last) link."""
        return self._conn

    @property
    def mtu_size(self) -> int:
        conn = self._conn
        return conn.mtu if conn is not None and conn.is_connected else _DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._conn is not None and self._conn.is_connected

    def _address_key(self) -> str:
        try:
            return wire.normalize_address(self.address)
        except ValueError:
            return self.address

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self.is_connected:
            raise BleakError("Client is already connected")
        if pair:
            logger.warning("the airspace has no BLE pairing/bonding; pair=True ignored for %s", self.address)
        timeout = float(kwargs.get("timeout", self._timeout))
        try:
            address = wire.normalize_address(self.address)
        except ValueError:
            raise BleakDeviceNotFoundError(
                self.address, "not a Bluetooth address: %r" % self.address
            ) from None
        radio = await _radio_for(self.airspace_addr, self.central_name)
        other = radio.clients.get(address)
        if other is not None and other is not self and other.is_connected:
            raise BleakError("%s is already connected by another BleakClient on this phone" % address)
        try:
            conn = await radio.connect(address, timeout)
        except wire.AirspaceTimeoutError as exc:
            raise AirspaceDeviceNotFoundError(
                self.address, "Device with address %s was not found (not advertising in range)" % address
            ) from exc
        except wire.NotFoundError as exc:
            raise BleakDeviceNotFoundError(
                self.address, "Device with address %s was not found" % address
            ) from exc
        except wire.AirspaceError as exc:
            raise _bleak_error(exc, "connect to %s" % address) from exc
        self._radio = radio
        self._conn = conn
        self._notify.clear()
        self._values.clear()
        radio.clients[address] = self
        try:
            if self.mtu_request:
                with _bleak_errors("MTU exchange"):
                    await conn.exchange_mtu(self.mtu_request)
            self.services = await self._get_services()
        except BaseException:
            await _disconnect_quietly(conn)
            raise
        if not conn.is_connected:
            raise BleakError("Not connected: the link to %s dropped while connecting" % address)

    async def disconnect(self) -> None:
        conn = self._conn
        if conn is None or not conn.is_connected:
            return
        with _bleak_errors("disconnect"):
            await conn.disconnect()
            await conn.wait_disconnected(_DISCONNECT_WAIT_S)

    def handle_disconnected(self) -> None:
        """The link is down (requested or not): bleak's disconnected callback, once per link."""
        self._notify.clear()
        logger.debug("disconnected from %s", self.address)
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("the airspace has no BLE pairing/bonding (Hug bands pair in the app layer)")

    async def unpair(self) -> None:
        raise NotImplementedError("the airspace has no BLE pairing/bonding (Hug bands pair in the app layer)")

    # ----- services -----

    def _link(self) -> Connection:
        conn = self._conn
        if conn is None or not conn.is_connected:
            raise BleakError("Not connected")
        return conn

    async def _get_services(self, **kwargs: Any) -> BleakGATTServiceCollection:
        """The band's GATT table (discovered by the airspace on connect) as bleak's own objects."""
        conn = self._link()
        if self.services is not None and self.services.services and kwargs.get("use_cached", False):
            return self.services
        collection = BleakGATTServiceCollection()
        for svc in conn.services():
            if self._requested_services is not None and svc.uuid not in self._requested_services:
                continue
            service = BleakGATTService(svc, svc.handle, svc.uuid)
            collection.add_service(service)
            for ch in svc.characteristics:
                char = BleakGATTCharacteristic(
                    ch,
                    ch.handle,
                    ch.uuid,
                    _properties(ch.properties),
                    functools.partial(_max_write_without_response, conn),
                    service,
                )
                collection.add_characteristic(char)
                for d in ch.descriptors:
                    collection.add_descriptor(BleakGATTDescriptor(d, d.handle, d.uuid, char))
        return collection

    # ----- I/O -----

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        handle = characteristic.handle
        if use_cached and handle in self._values:
            return bytearray(self._values[handle])
        conn = self._link()
        with _bleak_errors("read %s" % characteristic.uuid):
            value = await conn.read(handle)
        self._values[handle] = value
        return bytearray(value)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        conn = self._link()
        with _bleak_errors("read descriptor %s" % descriptor.uuid):
            return bytearray(await conn.read(descriptor.handle))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        conn = self._link()
        with _bleak_errors("write %s" % characteristic.uuid):
            await conn.write(characteristic.handle, bytes(data), response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        conn = self._link()
        with _bleak_errors("write descriptor %s" % descriptor.uuid):
            await conn.write(descriptor.handle, bytes(data), response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        conn = self._link()
        props = characteristic.properties
        if "notify" not in props and "indicate" not in props:
            raise BleakError("Characteristic %s does not support notify or indicate" % characteristic.uuid)
        handle = characteristic.handle
        self._notify[handle] = callback
        try:
            with _bleak_errors("start notify on %s" % characteristic.uuid):
                # notifications are preferred over indications when both are offered (bleak's rule)
                await conn.subscribe(handle, self._on_notify, indicate="notify" not in props)
        except BaseException:
            self._notify.pop(handle, None)
            raise

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        handle = characteristic.handle
        self._notify.pop(handle, None)
        conn = self._link()
        with _bleak_errors("stop notify on %s" % characteristic.uuid):
            await conn.unsubscribe(handle)

    def _on_notify(self, handle: int, value: bytes) -> None:
        self._values[handle] = value
        callback = self._notify.get(handle)
        if callback is not None:
            callback(bytearray(value))


def _max_write_without_response(conn: Connection) -> int:
    return conn.mtu - 3


# ----------------------------------------------------------------------------------------------------
# Binding to an airspace


@functools.cache
def airspace_backend(
    airspace_addr: str, central_name: str | None = None, *, mtu_request: int | None = DEFAULT_MTU_REQUEST
) -> tuple[type[BaseBleakScanner], type[BaseBleakClient]]:
    """Scanner and client backend classes bound to the airspace at ``airspace_addr`` (127.0.0.1:PORT)
    as the phone named ``central_name`` (per-phone RSSI and faults). Same arguments, same classes.

    Pass them as ``BleakScanner(..., backend=scanner)`` and ``BleakClient(..., backend=client)``.
    ``mtu_request``: the ATT MTU a connect asks for (None: keep the default 23)."""
    wire.parse_addr(airspace_addr)  # loopback only; raises ValueError otherwise
    attrs: dict[str, Any] = {
        "airspace_addr": airspace_addr,
        "central_name": central_name,
        "__module__": __name__,
    }
    scanner = type("AirspaceBleakScanner", (AirspaceBleakScanner,), dict(attrs))
    client = type("AirspaceBleakClient", (AirspaceBleakClient,), dict(attrs, mtu_request=mtu_request))
    return scanner, client
