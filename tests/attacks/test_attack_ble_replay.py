"""Replayed BLE frames against the real firmware on a virtual band (airspace, band in its own process).

Frames the owner's phone really wrote (PairConfirm, Play, Ack) are captured and written again: in the same
connection (counter already used), and on a later connection by a stranger and by the owner (new band
nonce, so new session keys). None may buzz, answer or open a session. Complements
tests/firmware/test_virtual_band.py::test_stranger_cannot_buzz_read_or_repair (guessed keys, a key
exchange outside the window), which does not replay captured traffic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from minimal_phone import Phone
from test_virtual_band import TAP_MS, World, world

from hugproto import frames, patterns


class Recorder(Phone):
    """The owner's phone, keeping every frame it wrote (what a sniffer would capture)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.written: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        await super().write(data)


async def felt_tokens(phone: Phone, quiet: float) -> list[int]:
    return [m.token for m in await phone.messages_until_quiet(quiet) if isinstance(m, frames.Felt)]


def test_replayed_ble_frames_are_rejected_by_the_real_firmware(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await w.control.hold(w.address, 5300)
        owner = Recorder(w.central, w.on_air)
        await owner.connect()
        key = await owner.pair()
        await asyncio.sleep(2.5)  # the pairing buzz is over
        await w.control.hold(w.address, TAP_MS)
        press = await owner.next_message()
        assert isinstance(press, frames.Press)
        await owner.send(frames.Ack(press.seq))
        await owner.send(frames.Play(patterns.HUG, 1, 255, 1, 7001))
        assert await felt_tokens(owner, 2.0) == [7001]
        buzzes = await w.motor_on_count()
        captured = list(owner.written)
        auth_frame = next(f for f in captured if frames.frame_kind(f) == frames.PAIR_CONFIRM)
        play_frame = next(f for f in captured if frames.frame_kind(f) == frames.PLAY)

        # 1. same connection: the Play frame written again (its counter is used) -> no Felt, no buzz
        await owner.write(play_frame)
        assert await felt_tokens(owner, 1.5) == []
        assert await w.motor_on_count() == buzzes
        await owner.disconnect()

        # 2. a stranger replays the owner's captured Play, Ack and PairConfirm on a new connection (new band
        # nonce): each is a bad frame, and the third drops the link
        stranger = Phone(w.central, w.on_air)
        await stranger.connect()
        await stranger.state(None)
        await stranger.write(play_frame)
        for f in captured:
            if frames.frame_kind(f) == frames.ACK:
                await stranger.write(f)
                break
        await stranger.write(auth_frame)
        assert stranger.conn is not None
        assert await stranger.conn.wait_disconnected(3) is not None, "the third bad frame drops the link"
        assert stranger.raw.empty(), "the band answered replayed frames"
        assert await w.motor_on_count() == buzzes

        # 3. the owner reconnects and authenticates; frames from the old session do not verify here
        owner2 = Phone(w.central, w.on_air)
        await owner2.connect()
        ok = await owner2.auth(key)
        assert ok.pending == 0
        await owner2.messages_until_quiet(1.0)  # the Status frame after the stranger's attempt
        await owner2.write(play_frame)
        assert await felt_tokens(owner2, 1.5) == []
        assert await w.motor_on_count() == buzzes, "a replayed Play from an old connection buzzed"
        # the link survived one bad frame, and a genuinely new Play still plays
        await owner2.send(frames.Play(patterns.HUG, 1, 255, 1, 7002))
        assert await felt_tokens(owner2, 2.0) == [7002]
        assert await w.motor_on_count() > buzzes
        await owner2.disconnect()
        owner3 = Phone(w.central, w.on_air)
        await owner3.connect()
        await owner3.auth(key)
        statuses = [m for m in await owner3.messages_until_quiet(1.5) if isinstance(m, frames.Status)]
        assert statuses
        assert statuses[-1].rejected >= 5, "the band counted every replay it rejected"

    async def main() -> None:
        async with world(tmp_path / "band") as w:
            await asyncio.wait_for(scenario(w), 90)

    asyncio.run(main())
