"""A simulated BlueZ: ``org.bluez`` on a private dbus-daemon, fronting the airspace as one central.

bleak's own Linux backend (unmodified) talks to it exactly as it talks to bluetoothd, so the app's
BlueZ path is exercised without a radio:

    python -m hugsim.phone.bluez --airspace 127.0.0.1:PORT
    # prints ONE line, the bus address (unix:path=/tmp/.../bus,guid=...), and runs until killed;
    # then: DBUS_SYSTEM_BUS_ADDRESS=<that line> and a `bluetoothctl` stub on PATH (see
    # ``write_bluetoothctl_stub``) and bleak's BleakScanner/BleakClient just work.

What is simulated (the surface bleak 3.1 reads; everything else is left out on purpose):

* ``/org/bluez/hci0`` ``Adapter1``: Address (the airspace central's), Name, Alias, Powered=True,
  Discovering, Roles=[central], SetDiscoveryFilter (UUIDs, RSSI, Pattern, DuplicateData honoured),
  StartDiscovery/StopDiscovery (reference counted), RemoveDevice, GetDiscoveryFilters.
* ``.../dev_XX_XX_XX_XX_XX_XX`` ``Device1``, created on first advert while discovering: Address,
  AddressType, Name/Alias, RSSI, TxPower (only if advertised), ManufacturerData, ServiceData, UUIDs,
  Connected, ServicesResolved, Paired/Bonded/Trusted/Blocked False, Adapter; Connect, Disconnect,
  Pair/CancelPairing (NotSupported: the Hug protocol does its own pairing). As in BlueZ, RSSI and
  TxPower are invalidated when discovery stops and a device not seen for ``temporary_timeout`` s
  is removed unless connected. The scan starts after StartDiscovery has answered, and a known
  device is signalled again at least every ``REPORT_INTERVAL_S`` while discovering (a real RSSI
  wobbles, so bluetoothd keeps signalling it; bleak's find_device_by_address relies on that).
* GATT after Connect: ``<dev>/serviceXXXX/charYYYY/descZZZZ`` with ``GattService1``,
  ``GattCharacteristic1`` (ReadValue, WriteValue type=request/command, StartNotify/StopNotify,
  Value, Flags, Notifying, MTU, Handle) and ``GattDescriptor1`` (ReadValue; WriteValue refuses the
  CCCD like BlueZ). Objects are exported before ServicesResolved=True and removed on disconnect,
  which is signalled at once (ServicesResolved=False, InterfacesRemoved, Connected=False).
  A notification is a PropertiesChanged of ``Value``; as in BlueZ a ReadValue also updates
  ``Value`` and so reaches a subscribed bleak callback a second time.

``YYYY`` is the characteristic's *value* handle by default, so bleak's ``characteristic.handle``
equals the airspace's (and the custom airspace backend's). Real BlueZ names the characteristic by
its *declaration* handle (value handle - 1); ``--char-handles declaration`` reproduces that.
"""

import argparse
import asyncio
import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from dbus_fast import DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBytes, DBusDict, DBusObjectPath, DBusSignature
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_method, dbus_property

from hugsim.airspace import Advert, AirspaceCentral, Connection, wire

BLUEZ_SERVICE = "org.bluez"
ADAPTER_PATH = "/org/bluez/hci0"
BLUETOOTHCTL_VERSION = "5.66"
CONNECT_TIMEOUT_S = 20.0  # how long Connect waits for the peripheral to advertise (BlueZ: until cancelled)
TEMPORARY_TIMEOUT_S = 30.0  # BlueZ main.conf TemporaryTimeout default
DIAL_STEP_S = 0.5  # an aborted Connect stops within this (there is no "cancel connect" in the air)
SWEEP_INTERVAL_S = 1.0
REPORT_INTERVAL_S = 1.0  # a known device is signalled again at least this often while discovering

ERR_FAILED = "org.bluez.Error.Failed"
ERR_IN_PROGRESS = "org.bluez.Error.InProgress"
ERR_NOT_CONNECTED = "org.bluez.Error.NotConnected"
ERR_NOT_PERMITTED = "org.bluez.Error.NotPermitted"
ERR_NOT_SUPPORTED = "org.bluez.Error.NotSupported"
ERR_DOES_NOT_EXIST = "org.bluez.Error.DoesNotExist"
ERR_INVALID_ARGS = "org.bluez.Error.InvalidArguments"

_ATT_REQUEST_NOT_SUPPORTED = 0x06

DBusStrList = Annotated[list[str], DBusSignature("as")]


# --------------------------------------------------------------------------- D-Bus objects


class _Props(ServiceInterface):
    """A ServiceInterface whose D-Bus properties read from ``self.props`` (see ``_with_props``)."""

    def __init__(self, name: str, props: dict[str, Any]) -> None:
        super().__init__(name)
        self.props = props

    def update(self, **changed: Any) -> None:
        """Set properties; signal those whose value changed."""
        diff = {k: v for k, v in changed.items() if self.props.get(k, _MISSING) != v}
        self.props.update(diff)
        if diff:
            self.emit_properties_changed(diff)

    def signal(self, changed: dict[str, Any], invalidated: list[str] | None = None) -> None:
        """Set properties and signal them whether or not they changed (notifications, adverts)."""
        self.props.update(changed)
        self.emit_properties_changed(changed, invalidated or [])


_MISSING = object()


def _property(name: str, signature: str, writable: bool) -> Any:
    def get(self: _Props) -> Any:
        return self.props[name]

    get.__name__ = name
    get.__annotations__ = {"return": signature}
    if not writable:
        return dbus_property(access=PropertyAccess.READ, name=name)(get)
    prop = dbus_property(access=PropertyAccess.READWRITE, name=name)(get)

    def set_(self: _Props, value: Any) -> None:
        self.update(**{name: value})

    set_.__name__ = name
    set_.__annotations__ = {"value": signature}
    return prop.setter(set_)


_classes: dict[tuple[type, tuple[tuple[str, str], ...], frozenset[str]], type] = {}


def _with_props(base: type, spec: list[tuple[str, str]], writable: frozenset[str] = frozenset()) -> type:
    """``base`` plus one read-only D-Bus property per (name, signature) (BlueZ omits unknown
    optional properties such as Name or TxPower, so a device gets the class for what it has)."""
    key = (base, tuple(spec), writable)
    cls = _classes.get(key)
    if cls is None:
        ns = {name: _property(name, sig, name in writable) for name, sig in spec}
        cls = _classes[key] = type(base.__name__, (base,), ns)
    return cls


def _gatt_error(exc: Exception) -> DBusError:
    """An airspace error as bluetoothd reports it (bleak maps these back to GATT errors)."""
    if isinstance(exc, wire.GattError):
        if exc.att == wire.ATT_READ_NOT_PERMITTED:
            return DBusError(ERR_NOT_PERMITTED, "Read not permitted")
        if exc.att == wire.ATT_WRITE_NOT_PERMITTED:
            return DBusError(ERR_NOT_PERMITTED, "Write not permitted")
        if exc.att == _ATT_REQUEST_NOT_SUPPORTED:
            return DBusError(ERR_NOT_SUPPORTED, "Operation is not supported")
        return DBusError(ERR_FAILED, "Operation failed with ATT error: 0x%02x" % exc.att)
    if isinstance(exc, wire.NotConnectedError):
        return DBusError(ERR_FAILED, "Not connected")
    return DBusError(ERR_FAILED, str(exc) or type(exc).__name__)


def _option(options: dict[str, Any], key: str, default: Any = None) -> Any:
    value = options.get(key, default)
    return value.value if isinstance(value, Variant) else value


class _AdapterBase(_Props):
    def __init__(self, bluez: "SimulatedBlueZ", props: dict[str, Any]) -> None:
        super().__init__("org.bluez.Adapter1", props)
        self.bluez = bluez

    @dbus_method()
    def SetDiscoveryFilter(self, properties: DBusDict) -> None:
        self.bluez.set_discovery_filter({k: _option(properties, k) for k in properties})

    @dbus_method()
    def StartDiscovery(self) -> None:
        self.bluez.start_discovery()

    @dbus_method()
    async def StopDiscovery(self) -> None:
        await self.bluez.stop_discovery()

    @dbus_method()
    async def RemoveDevice(self, device: DBusObjectPath) -> None:
        await self.bluez.remove_device(device)

    @dbus_method()
    def GetDiscoveryFilters(self) -> DBusStrList:
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable", "Pattern"]


_ADAPTER_PROPS = [
    ("Address", "s"),
    ("AddressType", "s"),
    ("Name", "s"),
    ("Alias", "s"),
    ("Class", "u"),
    ("Powered", "b"),
    ("PowerState", "s"),
    ("Discoverable", "b"),
    ("DiscoverableTimeout", "u"),
    ("Pairable", "b"),
    ("PairableTimeout", "u"),
    ("Discovering", "b"),
    ("UUIDs", "as"),
    ("Modalias", "s"),
    ("Roles", "as"),
    ("ExperimentalFeatures", "as"),
]


class _DeviceBase(_Props):
    def __init__(self, device: "_Device", props: dict[str, Any]) -> None:
        super().__init__("org.bluez.Device1", props)
        self.device = device

    @dbus_method()
    async def Connect(self) -> None:
        await self.device.connect()

    @dbus_method()
    async def Disconnect(self) -> None:
        await self.device.disconnect()

    @dbus_method()
    def Pair(self) -> None:
        raise DBusError(ERR_NOT_SUPPORTED, "Operation is not supported (the simulated BlueZ cannot bond)")

    @dbus_method()
    def CancelPairing(self) -> None:
        raise DBusError(ERR_DOES_NOT_EXIST, "Does Not Exist")


_DEVICE_PROPS = [
    ("Address", "s"),
    ("AddressType", "s"),
    ("Alias", "s"),
    ("Paired", "b"),
    ("Bonded", "b"),
    ("Trusted", "b"),
    ("Blocked", "b"),
    ("LegacyPairing", "b"),
    ("Connected", "b"),
    ("UUIDs", "as"),
    ("Adapter", "o"),
    ("ManufacturerData", "a{qv}"),
    ("ServiceData", "a{sv}"),
    ("ServicesResolved", "b"),
    ("RSSI", "n"),
]
_DEVICE_OPTIONAL = [("Name", "s"), ("TxPower", "n")]


class _ServiceIface(_Props):
    def __init__(self, props: dict[str, Any]) -> None:
        super().__init__("org.bluez.GattService1", props)


_SERVICE_PROPS = [("UUID", "s"), ("Primary", "b"), ("Device", "o"), ("Includes", "ao"), ("Handle", "q")]


class _CharBase(_Props):
    def __init__(self, device: "_Device", value_handle: int, props: dict[str, Any]) -> None:
        super().__init__("org.bluez.GattCharacteristic1", props)
        self.device = device
        self.value_handle = value_handle

    @dbus_method()
    async def ReadValue(self, options: DBusDict) -> DBusBytes:
        offset = _option(options, "offset", 0) or 0
        value = await self.device.gatt_read(self.value_handle)
        self.signal({"Value": value})  # bluetoothd caches what it read (and signals it)
        return value[offset:]

    @dbus_method()
    async def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:
        kind = _option(options, "type")
        if kind is None:
            kind = "request" if "write" in self.props["Flags"] else "command"
        if kind not in ("request", "command", "reliable"):
            raise DBusError(ERR_INVALID_ARGS, "Invalid arguments in method call")
        await self.device.gatt_write(self.value_handle, bytes(value), response=kind != "command")

    @dbus_method()
    async def StartNotify(self) -> None:
        flags = self.props["Flags"]
        if "notify" not in flags and "indicate" not in flags:
            raise DBusError(ERR_NOT_SUPPORTED, "Operation is not supported")
        if self.props["Notifying"]:
            return  # BlueZ answers success to a client that is already notifying
        await self.device.gatt_subscribe(self.value_handle, self.on_notify)
        self.update(Notifying=True)

    @dbus_method()
    async def StopNotify(self) -> None:
        if not self.props["Notifying"]:
            raise DBusError(ERR_FAILED, "No notify session started")
        self.update(Notifying=False)
        await self.device.gatt_unsubscribe(self.value_handle)

    def on_notify(self, _handle: int, value: bytes) -> None:
        if self.props["Notifying"]:
            self.signal({"Value": bytes(value)})


_CHAR_PROPS = [
    ("UUID", "s"),
    ("Service", "o"),
    ("Value", "ay"),
    ("Notifying", "b"),
    ("Flags", "as"),
    ("MTU", "q"),
    ("Handle", "q"),
]


class _DescBase(_Props):
    def __init__(self, device: "_Device", handle: int, props: dict[str, Any]) -> None:
        super().__init__("org.bluez.GattDescriptor1", props)
        self.device = device
        self.handle = handle

    @dbus_method()
    async def ReadValue(self, options: DBusDict) -> DBusBytes:
        offset = _option(options, "offset", 0) or 0
        value = await self.device.gatt_read(self.handle)
        self.signal({"Value": value})
        return value[offset:]

    @dbus_method()
    async def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:
        if self.props["UUID"] == wire.CCCD_UUID:
            # bluetoothd owns the CCCD: clients use StartNotify/StopNotify
            raise DBusError(ERR_NOT_PERMITTED, "Write not permitted")
        await self.device.gatt_write(self.handle, bytes(value), response=True)


_DESC_PROPS = [("UUID", "s"), ("Characteristic", "o"), ("Value", "ay"), ("Handle", "q")]


# --------------------------------------------------------------------------- devices


def device_path(address: str, adapter_path: str = ADAPTER_PATH) -> str:
    return "%s/dev_%s" % (adapter_path, wire.normalize_address(address).replace(":", "_"))


class _Device:
    """One remote device: its Device1 object, its link and its GATT objects."""

    def __init__(self, bluez: "SimulatedBlueZ", advert: Advert, props: dict[str, Any]) -> None:
        self.bluez = bluez
        self.address = advert.address
        self.path = device_path(advert.address, bluez.adapter_path)
        optional = [(n, s) for n, s in _DEVICE_OPTIONAL if n in props]
        cls = _with_props(_DeviceBase, _DEVICE_PROPS + optional, frozenset({"Trusted", "Alias"}))
        self.iface: _DeviceBase = cls(self, props)
        self.conn: Connection | None = None
        self.connecting: asyncio.Future[Connection] | None = None
        self.aborted = False
        self._waiter: asyncio.Task[Any] | None = None
        self._undo: asyncio.Future[None] | None = None  # dropping a link that came up too late
        self.gatt_paths: list[str] = []
        self.last_seen = self.last_signal = time.monotonic()

    @property
    def busy(self) -> bool:
        return self.conn is not None or self.connecting is not None

    # ----- link

    async def connect(self) -> None:
        if self.conn is not None:
            return
        pending = self.connecting
        if pending is not None and not self.aborted:
            raise DBusError(ERR_IN_PROGRESS, "In Progress")
        if pending is not None:  # a cancelled attempt is still in the air: let it land (it is undone)
            await asyncio.wait([pending])
        if self._undo is not None:
            await asyncio.wait([self._undo])
            self._undo = None
        attempt = asyncio.ensure_future(self._dial())
        self.connecting, self.aborted = attempt, False
        attempt.add_done_callback(self._attempt_done)
        self._waiter = asyncio.current_task()
        try:
            conn = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            raise DBusError(ERR_FAILED, "Connection attempt cancelled") from None
        except wire.AirspaceError as exc:
            raise DBusError(ERR_FAILED, "le-connection-failed: %s" % exc) from None
        finally:
            self._waiter = None
        if not conn.is_connected:
            raise DBusError(ERR_FAILED, "Connection dropped right after connecting")
        self.conn = conn
        self.iface.update(Connected=True)
        try:
            await conn.exchange_mtu(517)  # bluetoothd always exchanges the MTU on connect
        except wire.AirspaceError:
            pass
        if self.conn is not conn:  # dropped while exchanging the MTU
            raise DBusError(ERR_FAILED, "Connection dropped during service discovery")
        self._export_gatt(conn)
        uuids = list(self.iface.props["UUIDs"])
        uuids += [s.uuid for s in conn.services() if s.uuid not in uuids]
        self.iface.update(UUIDs=uuids, ServicesResolved=True)

    async def _dial(self) -> Connection:
        """Connect in short airspace attempts, so that an aborted Connect stops within one step."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT_S
        while True:
            step = max(0.05, min(DIAL_STEP_S, deadline - loop.time()))
            try:
                return await self.bluez.central.connect(
                    self.address, step, disconnected_callback=self._on_link_down
                )
            except wire.AirspaceTimeoutError:
                if self.aborted or loop.time() >= deadline:
                    raise

    def abort(self) -> None:
        """Cancel a pending Connect (its link, if it still comes up, is dropped at once)."""
        if self.connecting is None:
            return
        self.aborted = True
        if self._waiter is not None:
            self._waiter.cancel()

    def _attempt_done(self, attempt: "asyncio.Future[Connection]") -> None:
        if self.connecting is attempt:
            self.connecting = None
        if self.aborted and not attempt.cancelled() and attempt.exception() is None:
            self._undo = self.bluez.background(attempt.result().disconnect())
        elif not attempt.cancelled():
            attempt.exception()  # retrieved: a failed attempt is answered through Connect

    async def disconnect(self) -> None:
        if self.connecting is not None:
            self.abort()
            return
        conn = self.conn
        if conn is None:
            raise DBusError(ERR_NOT_CONNECTED, "Not Connected")
        try:
            await conn.disconnect()
        except wire.AirspaceError:
            pass
        self._teardown(conn)

    def _on_link_down(self, conn: Connection) -> None:
        self._teardown(conn)

    def _teardown(self, conn: Connection) -> None:
        if self.conn is not conn:
            return
        self.conn = None
        self.last_seen = time.monotonic()
        self.iface.update(ServicesResolved=False)
        for path in reversed(self.gatt_paths):
            self.bluez.bus.unexport(path)
        self.gatt_paths.clear()
        self.iface.update(Connected=False)

    def _export_gatt(self, conn: Connection) -> None:
        bus = self.bluez.bus
        decl = self.bluez.char_handles == "declaration"
        for svc in conn.services():
            spath = "%s/service%04x" % (self.path, svc.handle)
            sprops = {
                "UUID": svc.uuid,
                "Primary": True,
                "Device": self.path,
                "Includes": [],
                "Handle": svc.handle,
            }
            bus.export(spath, _with_props(_ServiceIface, _SERVICE_PROPS)(sprops))
            self.gatt_paths.append(spath)
            for ch in svc.characteristics:
                handle = ch.decl_handle if decl else ch.handle
                cpath = "%s/char%04x" % (spath, handle)
                cprops = {
                    "UUID": ch.uuid,
                    "Service": spath,
                    "Value": b"",
                    "Notifying": False,
                    "Flags": ch.property_names,
                    "MTU": conn.mtu,
                    "Handle": handle,
                }
                bus.export(cpath, _with_props(_CharBase, _CHAR_PROPS)(self, ch.handle, cprops))
                self.gatt_paths.append(cpath)
                for d in ch.descriptors:
                    dpath = "%s/desc%04x" % (cpath, d.handle)
                    dprops = {"UUID": d.uuid, "Characteristic": cpath, "Value": b"", "Handle": d.handle}
                    bus.export(dpath, _with_props(_DescBase, _DESC_PROPS)(self, d.handle, dprops))
                    self.gatt_paths.append(dpath)

    # ----- GATT

    def _link(self) -> Connection:
        if self.conn is None:
            raise DBusError(ERR_FAILED, "Not connected")
        return self.conn

    async def gatt_read(self, handle: int) -> bytes:
        try:
            return await self._link().read(handle)
        except wire.AirspaceError as exc:
            raise _gatt_error(exc) from None

    async def gatt_write(self, handle: int, data: bytes, response: bool) -> None:
        try:
            await self._link().write(handle, data, response=response)
        except wire.AirspaceError as exc:
            raise _gatt_error(exc) from None

    async def gatt_subscribe(self, handle: int, callback: Callable[[int, bytes], None]) -> None:
        try:
            await self._link().subscribe(handle, callback)
        except wire.AirspaceError as exc:
            raise _gatt_error(exc) from None

    async def gatt_unsubscribe(self, handle: int) -> None:
        if self.conn is None:
            return
        try:
            await self.conn.unsubscribe(handle)
        except wire.AirspaceError as exc:
            raise _gatt_error(exc) from None


# --------------------------------------------------------------------------- the adapter


def _advert_props(advert: Advert) -> dict[str, Any]:
    props: dict[str, Any] = {
        "RSSI": advert.rssi,
        "AddressType": "random" if advert.addr_type else "public",
        "ManufacturerData": {k: Variant("ay", v) for k, v in advert.manufacturer_data.items()},
        "ServiceData": {k: Variant("ay", v) for k, v in advert.service_data.items()},
    }
    name = advert.local_name
    if name is not None:
        props["Name"] = props["Alias"] = name
    if advert.tx_power is not None:
        props["TxPower"] = advert.tx_power
    return props


class SimulatedBlueZ:
    """The ``org.bluez`` objects on ``bus``, backed by one airspace ``central``."""

    def __init__(
        self,
        bus: MessageBus,
        central: AirspaceCentral,
        *,
        adapter_path: str = ADAPTER_PATH,
        char_handles: str = "value",
        temporary_timeout: float = TEMPORARY_TIMEOUT_S,
    ) -> None:
        self.bus = bus
        self.central = central
        self.adapter_path = adapter_path
        self.char_handles = char_handles
        self.temporary_timeout = temporary_timeout
        self.devices: dict[str, _Device] = {}
        self._filter: dict[str, Any] = {}
        self._discovery_sessions = 0
        self._scan_start: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        address = central.address or "00:00:00:00:00:00"
        props = {
            "Address": address,
            "AddressType": "public",
            "Name": "hugsim",
            "Alias": "hugsim",
            "Class": 0,
            "Powered": True,
            "PowerState": "on",
            "Discoverable": False,
            "DiscoverableTimeout": 180,
            "Pairable": False,
            "PairableTimeout": 0,
            "Discovering": False,
            "UUIDs": [],
            "Modalias": "usb:v1D6Bp0246d0542",
            "Roles": ["central"],
            "ExperimentalFeatures": [],
        }
        cls = _with_props(_AdapterBase, _ADAPTER_PROPS, frozenset({"Alias"}))
        self.adapter: _AdapterBase = cls(self, props)

    def background(self, coro: Coroutine[Any, Any, Any]) -> "asyncio.Future[None]":
        """Run ``coro`` as a kept task whose airspace errors are of no interest."""

        async def quietly() -> None:
            with contextlib.suppress(wire.AirspaceError):
                await coro

        task = asyncio.ensure_future(quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def export(self) -> None:
        self.bus.export(self.adapter_path, self.adapter)
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for dev in list(self.devices.values()):
            dev.abort()
            if dev.conn is not None:
                conn = dev.conn
                with contextlib.suppress(wire.AirspaceError):
                    await conn.disconnect()
                dev._teardown(conn)

    # ----- discovery

    def set_discovery_filter(self, options: dict[str, Any]) -> None:
        known = {"UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable", "Pattern"}
        unknown = set(options) - known
        if unknown:
            raise DBusError(ERR_INVALID_ARGS, "Invalid arguments in method call: %s" % sorted(unknown))
        if "UUIDs" in options:
            options["UUIDs"] = [wire.uuid_str(u) for u in options["UUIDs"]]
        self._filter = options

    def start_discovery(self) -> None:
        self._discovery_sessions += 1
        if self._discovery_sessions > 1:
            return
        for dev in self.devices.values():
            dev.last_signal = 0.0
        self.adapter.update(Discovering=True)
        # The radio starts after the reply, as bluetoothd's does: an advert never beats the answer
        # to StartDiscovery (bleak registers its detection callbacks only once that has arrived).
        self._scan_start = asyncio.ensure_future(self._start_scan())

    async def _start_scan(self) -> None:
        try:
            await self.central.start_scan(self._on_advert)
        except wire.AirspaceError as exc:
            print("hugsim.bluez: cannot scan: %s" % exc, file=sys.stderr, flush=True)

    async def stop_discovery(self) -> None:
        if self._discovery_sessions == 0:
            raise DBusError(ERR_FAILED, "No discovery started")
        self._discovery_sessions -= 1
        if self._discovery_sessions:
            return
        if self._scan_start is not None:
            await self._scan_start
            self._scan_start = None
        with contextlib.suppress(wire.AirspaceError):
            await self.central.stop_scan()
        self.adapter.update(Discovering=False)
        for dev in self.devices.values():  # as bluetoothd: no RSSI outside discovery
            dev.iface.emit_properties_changed({}, ["RSSI", "TxPower"])

    def _matches(self, advert: Advert) -> bool:
        f = self._filter
        uuids = f.get("UUIDs")
        if uuids:
            have = set(advert.service_uuids) | set(advert.service_data)
            if not have & set(uuids):
                return False
        rssi = f.get("RSSI")
        if rssi is not None and advert.rssi < rssi:
            return False
        pattern = f.get("Pattern")
        if pattern:
            name = advert.local_name or ""
            if not (advert.address.startswith(pattern.upper()) or name.startswith(pattern)):
                return False
        return True

    def _on_advert(self, advert: Advert) -> None:
        if self._discovery_sessions == 0 or not self._matches(advert):
            return
        props = _advert_props(advert)
        dev = self.devices.get(advert.address)
        if dev is None:
            self._add_device(advert, props)
            return
        dev.last_seen = time.monotonic()
        iface = dev.iface
        uuids = list(iface.props["UUIDs"])
        uuids += [u for u in advert.service_uuids if u not in uuids]
        props["UUIDs"] = uuids
        if "Name" not in iface.props:
            props.pop("Name", None)  # learnt too late for this object's class; Alias still shows it
        if "TxPower" not in iface.props:
            props.pop("TxPower", None)
        changed = {k: v for k, v in props.items() if iface.props.get(k, _MISSING) != v}
        now = time.monotonic()
        if self._filter.get("DuplicateData") or now - dev.last_signal >= REPORT_INTERVAL_S:
            changed["RSSI"] = advert.rssi  # a real RSSI wobbles: bluetoothd signals it again and again
        if changed:
            dev.last_signal = now
            iface.signal(changed)

    def _add_device(self, advert: Advert, props: dict[str, Any]) -> None:
        full: dict[str, Any] = {
            "Address": advert.address,
            "Alias": advert.address.replace(":", "-"),
            "Paired": False,
            "Bonded": False,
            "Trusted": False,
            "Blocked": False,
            "LegacyPairing": False,
            "Connected": False,
            "UUIDs": list(dict.fromkeys(advert.service_uuids)),
            "Adapter": self.adapter_path,
            "ServicesResolved": False,
        }
        full.update(props)
        dev = _Device(self, advert, full)
        self.devices[advert.address] = dev
        self.bus.export(dev.path, dev.iface)

    async def remove_device(self, path: str) -> None:
        dev = next((d for d in self.devices.values() if d.path == path), None)
        if dev is None:
            raise DBusError(ERR_DOES_NOT_EXIST, "Does Not Exist")
        dev.abort()
        if dev.conn is not None:
            conn = dev.conn
            with contextlib.suppress(wire.AirspaceError):
                await conn.disconnect()
            dev._teardown(conn)
        self._drop(dev)

    def _drop(self, dev: _Device) -> None:
        if self.devices.get(dev.address) is dev:
            del self.devices[dev.address]
            self.bus.unexport(dev.path)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            now = time.monotonic()
            for dev in list(self.devices.values()):
                if not dev.busy and now - dev.last_seen > self.temporary_timeout:
                    self._drop(dev)


# --------------------------------------------------------------------------- the private bus

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""


def _parent_death_signal() -> Callable[[], None]:
    """A preexec_fn making the child get SIGTERM when we die, even by SIGKILL (Linux prctl)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return lambda: None

    def preexec() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return preexec


class PrivateBus:
    """A dbus-daemon of our own (session-type config, allow-all policy, socket in a temp dir)."""

    def __init__(self, dbus_daemon: str | None = None) -> None:
        self.dbus_daemon = dbus_daemon or shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon"
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    def start(self, timeout: float = 10.0) -> str:
        self.dir = Path(tempfile.mkdtemp(prefix="hugsim-bluez-"))
        config = self.dir / "bus.conf"
        config.write_text(_BUS_CONFIG.format(socket=self.dir / "bus"))
        log = self.dir / "daemon.log"  # it warns about fd limits when not root-capable: keep it aside
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [self.dbus_daemon, "--nofork", "--print-address=1", "--config-file=%s" % config],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=_parent_death_signal(),  # no threads yet in this process
            )
        atexit.register(self.stop)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        os.set_blocking(self.proc.stdout.fileno(), False)
        while not line.endswith(b"\n"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = log.read_text(errors="replace").strip()[-2000:]
                self.stop()
                raise RuntimeError("dbus-daemon did not start: %s" % why)
            chunk = self.proc.stdout.read()
            if chunk:
                line += chunk
            else:
                time.sleep(0.01)
        self.address = line.decode().strip()
        return self.address

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def write_bluetoothctl_stub(directory: str | os.PathLike[str], version: str = BLUETOOTHCTL_VERSION) -> Path:
    """Write an executable ``bluetoothctl`` that prints ``bluetoothctl: <version>`` (bleak runs
    ``bluetoothctl --version`` once per process and refuses BlueZ < 5.55). Put ``directory`` first
    on PATH to make a test independent of the host's BlueZ."""
    path = Path(directory) / "bluetoothctl"
    path.write_text('#!/bin/sh\necho "bluetoothctl: %s"\n' % version)
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- the process


async def serve(args: argparse.Namespace, bus_address: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    bus = await MessageBus(bus_address=bus_address).connect()
    central = await AirspaceCentral(args.airspace, name=args.name).start()
    bluez = SimulatedBlueZ(
        bus,
        central,
        char_handles=args.char_handles,
        temporary_timeout=args.temporary_timeout,
    )
    bluez.export()
    await bus.request_name(BLUEZ_SERVICE)
    print(bus_address, flush=True)
    try:
        await stop.wait()
    finally:
        await bluez.close()
        await central.close()
        bus.disconnect()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hugsim.phone.bluez", description=__doc__.split("\n")[0])
    parser.add_argument("--airspace", required=True, help="the airspace address, 127.0.0.1:PORT")
    parser.add_argument("--name", default="bluez-hci0", help="this central's name in the airspace")
    parser.add_argument(
        "--char-handles",
        choices=("value", "declaration"),
        default="value",
        help="which handle names charYYYY (and so bleak's characteristic.handle); BlueZ uses declaration",
    )
    parser.add_argument(
        "--temporary-timeout",
        type=float,
        default=TEMPORARY_TIMEOUT_S,
        help="seconds an unconnected device stays after its last advert (BlueZ TemporaryTimeout)",
    )
    args = parser.parse_args(argv)
    wire.parse_addr(args.airspace)  # loopback only
    private = PrivateBus()
    # SIGTERM before the loop installs its handler must still stop the daemon (atexit runs on exit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        address = private.start()
        return asyncio.run(serve(args, address))
    except KeyboardInterrupt:
        return 0
    finally:
        private.stop()


if __name__ == "__main__":
    sys.exit(main())
