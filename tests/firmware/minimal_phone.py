"""A minimal phone for firmware tests: the hugproto phone side over the airspace's central API.

The companion app's own band link (bleak) is tested separately; this stays small on purpose so
that a firmware test fails only because of the firmware.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from hugproto import frames, gatt, pairing, x25519
from hugproto.errors import ProtocolError
from hugsim.airspace import AirspaceCentral, AirspaceTimeoutError, Connection


class Phone:
    """``locate()`` says where the band advertises now: its address changes every few minutes and at
    once after a new key (the app finds it by the token in its adverts; these tests ask the airspace)."""

    def __init__(self, central: AirspaceCentral, locate: Callable[[], Awaitable[str]]) -> None:
        self.central = central
        self.locate = locate
        self.conn: Connection | None = None
        self.session: frames.Session | None = None
        self.band_nonce = b""
        self.raw: asyncio.Queue[bytes] = asyncio.Queue()
        self.states: asyncio.Queue[bytes] = asyncio.Queue()
        self.rejected: list[str] = []
        self.key = b""  # the band key, once paired
        self.code = 0  # how many times the band buzzed to confirm the pairing

    async def connect(self, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:  # the band may be taking a new address just now: look again
            try:
                self.conn = await self.central.connect(await self.locate(), timeout=1.0)
                break
            except AirspaceTimeoutError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
        for uuid, name in (
            (gatt.EVENT_CHAR_UUID, "event"),
            (gatt.COMMAND_CHAR_UUID, "command"),
            (gatt.STATE_CHAR_UUID, "state"),
        ):
            char = self.conn.get_characteristic(uuid)
            assert char is not None, f"band has no {name} characteristic"
            setattr(self, f"h_{name}", char.handle)
        await self.conn.subscribe(self.h_state, lambda _h, value: self.states.put_nowait(bytes(value)))
        await self.conn.subscribe(self.h_event, lambda _h, value: self.raw.put_nowait(bytes(value)))

    h_event = h_command = h_state = 0

    async def state(self, key: bytes | None) -> frames.State:
        assert self.conn is not None
        data = await self.conn.read(self.h_state)
        while not data:  # the band writes the state once it has handled the connection
            data = await asyncio.wait_for(self.states.get(), 3)
        st = frames.decode_state(data, key)
        self.band_nonce = st.nonce
        return st

    async def write(self, data: bytes) -> None:
        assert self.conn is not None
        await self.conn.write(self.h_command, data, response=True)

    async def pair(self) -> bytes:
        """X25519 with the band in its pairing window; returns the band key (the session is open)."""
        await self.state(None)
        secret = os.urandom(32)
        pub = x25519.public_key(secret)
        for half in (0, 1):
            await self.write(pairing.encode_pub(frames.PAIR_PUB, half, pub))
        halves = pairing.PubHalves()
        done = False
        while not done:
            done = halves.add(*pairing.decode_pub(await asyncio.wait_for(self.raw.get(), 5), frames.BAND_PUB))
        band_pub = bytes(halves.pub)
        nonce = os.urandom(frames.NONCE_LEN)
        key = pairing.band_key(x25519.x25519(secret, band_pub), self.band_nonce, nonce, pub, band_pub)
        self.session = frames.Session(key, self.band_nonce, nonce, frames.PHONE)
        await self.write(pairing.encode_confirm(key, self.band_nonce, nonce))
        msg = await self.next_message()
        assert isinstance(msg, frames.AuthOk), msg
        self.key, self.code = key, frames.pairing_code(key)
        return key

    async def auth(self, key: bytes) -> frames.AuthOk:
        if not self.band_nonce:
            await self.state(key)
        auth, self.session = frames.phone_session(key, self.band_nonce, os.urandom(frames.NONCE_LEN))
        await self.write(auth)
        msg = await self.next_message()
        assert isinstance(msg, frames.AuthOk), msg
        return msg

    async def send(self, msg: frames.Message) -> None:
        assert self.session is not None
        await self.write(self.session.seal(msg))

    async def next_message(self, timeout: float = 5.0) -> frames.Message:
        assert self.session is not None
        while True:
            data = await asyncio.wait_for(self.raw.get(), timeout)
            try:
                return self.session.open(data)
            except ProtocolError as exc:
                self.rejected.append(f"{type(exc).__name__}: {exc}")

    async def messages_until_quiet(self, quiet: float = 1.0) -> list[frames.Message]:
        got: list[frames.Message] = []
        while True:
            try:
                got.append(await self.next_message(quiet))
            except TimeoutError:
                return got

    async def disconnect(self) -> None:
        if self.conn is not None and self.conn.is_connected:
            await self.conn.disconnect()
        self.conn = None
        self.session = None
        self.band_nonce = b""
