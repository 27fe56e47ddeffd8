"""The one seam where the simulated radio plugs into the app: bleak's ``backend=`` classes for the
airspace, chosen here (configuration), never by a product module."""

from __future__ import annotations

from hugapp.core.bandlink import BleConfig
from hugsim.phone.bleak_backend import airspace_backend


def ble_config(airspace: str | None, central_name: str | None = None) -> BleConfig:
    """The platform's Bluetooth, or the simulated airspace at HOST:PORT when one is given."""
    if airspace is None:
        return BleConfig()
    scanner, client = airspace_backend(airspace, central_name)
    return BleConfig(scanner, client)
