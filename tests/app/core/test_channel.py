"""The handshake's read of the band state, against the order of events BlueZ produces.

BlueZ signals whatever a ReadValue returned as a Value change, so a client subscribed to the
state characteristic is told about the empty value the band holds before it has handled the
connection, and only then about the real state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hugapp.core import bandlink
from hugproto import frames, gatt

KEY = bytes(range(16))
NONCE = bytes(range(100, 100 + frames.NONCE_LEN))


class Char:
    def __init__(self, uuid: str) -> None:
        self.uuid = uuid


class Service:
    characteristics = [Char(gatt.EVENT_CHAR_UUID), Char(gatt.COMMAND_CHAR_UUID), Char(gatt.STATE_CHAR_UUID)]


class Services:
    def get_service(self, uuid: str) -> Service | None:
        return Service() if uuid == gatt.HUG_SERVICE_UUID else None


class BlueZOrderClient:
    """Reads give the empty value and signal it, as bluetoothd does; the band's state follows."""

    def __init__(self, state: bytes) -> None:
        self.services = Services()
        self.state = state
        self.callbacks: dict[str, Callable[[Any, bytearray], None]] = {}

    async def start_notify(self, char: Char, callback: Callable[[Any, bytearray], None]) -> None:
        self.callbacks[char.uuid] = callback

    async def read_gatt_char(self, char: Char) -> bytearray:
        notify = self.callbacks[char.uuid]
        loop = asyncio.get_running_loop()
        loop.call_soon(notify, char, bytearray())
        loop.call_later(0.05, notify, char, bytearray(self.state))
        return bytearray()


def test_state_read_before_the_band_is_ready_waits_for_the_real_state() -> None:
    state = frames.encode_state(KEY, NONCE, frames.FLAG_PAIRING_OPEN, 77, 3)

    async def main() -> frames.State:
        channel = bandlink._Channel(BlueZOrderClient(state))  # type: ignore[arg-type]
        await channel.subscribe()
        return await channel.read_state(KEY)

    got = asyncio.run(main())
    assert got.nonce == NONCE
    assert got.battery == 77
    assert got.flags & frames.FLAG_PAIRING_OPEN
