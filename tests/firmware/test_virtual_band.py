"""The real firmware on a virtual band in the airspace, driven by a minimal phone.

Each test starts its own airspace (in this process) and band (its own process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from minimal_phone import Phone

from hugproto import frames, pairing, patterns
from hugsim.airspace import Airspace, AirspaceCentral, AirspaceControl
from hugsim.band.process import BandProcess

TAP_MS = 80
PAIR_HOLD_MS = 5300


class World:
    def __init__(self, air: str, band: BandProcess, control: AirspaceControl, central: AirspaceCentral):
        self.air = air
        self.band = band
        self.control = control
        self.central = central

    @property
    def address(self) -> str:
        """The band's identity: the airspace's handle on it (never on the air)."""
        return self.band.address

    async def on_air(self) -> str:
        return await self.control.air_address(self.address)

    async def motor_on_count(self) -> int:
        """How many times the motor went from off to on."""
        return len(await self.control.motor_starts(self.address))

    async def paired_phone(self) -> Phone:
        await self.control.hold(self.address, PAIR_HOLD_MS)
        phone = Phone(self.central, self.on_air)
        await phone.connect()
        phone.key = await phone.pair()
        await asyncio.sleep(0.5)  # a hand lets go of the heart before it presses again
        return phone


@contextlib.asynccontextmanager
async def world(state: Path, board: str = "xiao_esp32c3") -> AsyncIterator[World]:
    server = Airspace()
    air = await server.start()
    band = BandProcess(air, state, board=board)
    try:
        await band.start()
        async with AirspaceControl(air) as control, AirspaceCentral(air) as central:
            yield World(air, band, control, central)
    finally:
        await band.kill()
        await server.close()


def run(coro_fn, tmp_path: Path) -> None:
    async def main() -> None:
        async with world(tmp_path / "band") as w:
            await asyncio.wait_for(coro_fn(w), 90)

    asyncio.run(main())


def test_pair_press_ack_play_felt(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        phone = await w.paired_phone()
        key = phone.key
        buzzes_after_pairing = await w.motor_on_count()
        acked: list[tuple[int, ...]] = []

        for taps in (1, 3):
            for _ in range(taps):
                await w.control.hold(w.address, TAP_MS)
                await asyncio.sleep(0.12)
            press = await phone.next_message()
            assert isinstance(press, frames.Press)
            assert (press.gesture, press.value) == (frames.GESTURE_TAP, taps)
            await phone.send(frames.Ack(press.seq))
            acked.append(press.fields())

        await w.control.hold(w.address, 1500)
        squeeze = await phone.next_message()
        assert isinstance(squeeze, frames.Press)
        assert squeeze.gesture == frames.GESTURE_SQUEEZE
        assert 1300 <= squeeze.duration_ms <= 1800
        await phone.send(frames.Ack(squeeze.seq))
        acked.append(squeeze.fields())

        await phone.send(frames.Play(patterns.HUG, 1, 255, 2, 4242))
        felt = await phone.next_message(10)
        assert isinstance(felt, frames.Felt)
        assert felt.token == 4242
        assert await w.motor_on_count() > buzzes_after_pairing
        plays = [e.value for e in await w.control.timeline(w.address) if e.kind == "play"]
        assert 4242 in plays, plays  # the player started it (the band's logic analyser)
        assert phone.rejected == []
        # acknowledged presses are not sent again on a new connection
        await phone.disconnect()
        again = Phone(w.central, w.on_air)
        await again.connect()
        await again.auth(key)
        resent = [m.fields() for m in await again.messages_until_quiet(1.5) if isinstance(m, frames.Press)]
        assert resent == [], f"acknowledged presses sent again: {resent} (acked {acked})"

    run(scenario, tmp_path)


def test_stranger_cannot_buzz_read_or_repair(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        owner = await w.paired_phone()
        key = owner.key
        await owner.disconnect()
        await asyncio.sleep(2.5)  # let the pairing buzz finish
        buzzes = await w.motor_on_count()

        stranger = Phone(w.central, w.on_air)
        await stranger.connect()
        state = await stranger.state(None)
        assert state.flags & frames.FLAG_PAIRED
        assert not state.flags & frames.FLAG_PAIRING_OPEN
        # a key exchange outside the pairing window, a Play under a guessed key, then an Auth with it
        wrong_key = os.urandom(16)
        auth, stranger.session = frames.phone_session(wrong_key, stranger.band_nonce, os.urandom(8))
        await stranger.write(pairing.encode_pub(frames.PAIR_PUB, 0, os.urandom(32)))
        await stranger.write(stranger.session.seal(frames.Play(patterns.BIG_HUG, 0, 255, 5, 1)))
        await stranger.write(auth)
        assert stranger.conn is not None
        assert await stranger.conn.wait_disconnected(3) is not None, "a wrong Auth must drop the link"
        await w.control.hold(w.address, TAP_MS)  # a press while the stranger tried: only for the owner
        await asyncio.sleep(1.0)
        assert stranger.raw.empty(), "the stranger received event frames"
        assert await w.motor_on_count() == buzzes, "the band buzzed for a stranger"

        # the owner's key still works and the press is waiting for it
        owner = Phone(w.central, w.on_air)
        await owner.connect()
        await owner.auth(key)
        got = await owner.messages_until_quiet(1.5)
        presses = [m for m in got if isinstance(m, frames.Press)]
        statuses = [m for m in got if isinstance(m, frames.Status)]
        assert len(presses) == 1
        assert statuses
        assert statuses[0].rejected >= 3, "the band counts what it rejected"

    run(scenario, tmp_path)


def test_unauthenticated_central_is_dropped(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        idler = Phone(w.central, w.on_air)
        await idler.connect()
        assert idler.conn is not None
        reason = await idler.conn.wait_disconnected(9)
        assert reason is not None, "a central that never authenticates keeps the band"
        # and the band advertises again for its own phone
        adverts = await w.central.scan(1.5)
        on_air = await w.on_air()
        assert any(a.address == on_air for a in adverts)

    run(scenario, tmp_path)


def test_outbox_survives_reboot(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        phone = await w.paired_phone()
        key = phone.key
        await phone.disconnect()
        for _ in range(3):  # three separate presses while the phone is away
            await w.control.hold(w.address, TAP_MS)
            await asyncio.sleep(0.8)
        await w.band.restart()  # SIGKILL, then boot again from the same flash
        phone = Phone(w.central, w.on_air)
        await phone.connect()
        ok = await phone.auth(key)
        assert ok.pending == 3
        presses = [m for m in await phone.messages_until_quiet(2.0) if isinstance(m, frames.Press)]
        assert len(presses) == 3
        seqs = [p.seq for p in presses]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(3)]
        await phone.send(frames.Ack(seqs[-1]))
        await asyncio.sleep(0.5)
        await w.band.restart()
        phone = Phone(w.central, w.on_air)
        await phone.connect()
        ok = await phone.auth(key)
        assert ok.pending == 0
        assert [m for m in await phone.messages_until_quiet(1.5) if isinstance(m, frames.Press)] == []

    run(scenario, tmp_path)


def test_touch_heart_and_drv2605_board(tmp_path: Path) -> None:
    """The S3 band: a capacitive heart and a DRV2605L haptic driver over I2C."""

    async def scenario(w: World) -> None:
        async def touch_for(ms: int) -> None:
            await w.control.touch(w.address, 1)
            await asyncio.sleep(ms / 1000)
            await w.control.touch(w.address, 0)

        await asyncio.sleep(2.0)  # the band calibrates its touch pad for 1.6 s after boot
        await touch_for(5400)
        phone = Phone(w.central, w.on_air)
        await phone.connect()
        await phone.pair()
        await asyncio.sleep(0.5)
        await touch_for(120)
        press = await phone.next_message()
        assert isinstance(press, frames.Press)
        assert (press.gesture, press.value) == (frames.GESTURE_TAP, 1)
        before = await w.motor_on_count()
        await phone.send(frames.Play(patterns.HUG, 0, 255, 1, 9))
        felt = await phone.next_message(10)
        assert isinstance(felt, frames.Felt)
        assert await w.motor_on_count() > before, "the DRV2605L drove the motor"

    async def main() -> None:
        async with world(tmp_path / "band", board="xiao_esp32s3") as w:
            await asyncio.wait_for(scenario(w), 90)

    asyncio.run(main())
