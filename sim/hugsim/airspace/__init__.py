"""The airspace: a simulated BLE radio medium and physical world shared by band and app processes.

* ``Airspace``: the server (``addr = await Airspace().start()``; ``python -m hugsim.airspace``).
* ``PeripheralRadio``: a band's radio (threaded; used by the sim ``bluetooth`` module).
* ``AirspaceCentral``: a phone's radio (asyncio; used by the app's bleak backend and tests).
* ``AirspaceControl``: press buttons, read output timelines, move bands, inject faults.

Wire format and errors: ``hugsim.airspace.wire``.
"""

from .central import Advert, AirspaceCentral, Characteristic, Connection, Descriptor, Service
from .control import AirspaceControl, TimelineEntry
from .peripheral import PeripheralRadio
from .server import Airspace
from .wire import (
    AirspaceError,
    AirspaceTimeoutError,
    BusyError,
    GattError,
    LinkLimitError,
    NotConnectedError,
    NotFoundError,
)

__all__ = [
    "Advert",
    "Airspace",
    "AirspaceCentral",
    "AirspaceControl",
    "AirspaceError",
    "AirspaceTimeoutError",
    "BusyError",
    "Characteristic",
    "Connection",
    "Descriptor",
    "GattError",
    "LinkLimitError",
    "NotConnectedError",
    "NotFoundError",
    "PeripheralRadio",
    "Service",
    "TimelineEntry",
]
