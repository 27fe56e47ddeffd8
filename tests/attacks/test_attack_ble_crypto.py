"""A listener and a thief in radio range, against the real firmware on a virtual band.

Every byte the simulated radio carries between the band and any phone (reads, writes and
notifications, as a sniffer would see them) comes from the airspace's passive recorder. Protocol 1
failed all three: the band key crossed the air in clear at pairing, payloads were readable, and a
stranger who paired first left the parent's app saying "no band ... is in range" and nothing else.
"""

from __future__ import annotations

import asyncio
import hmac
import struct
from pathlib import Path
from typing import Any

import pytest
from minimal_phone import Phone
from test_virtual_band import PAIR_HOLD_MS, TAP_MS, World, world

from hugapp.core import bandlink
from hugapp.core.store import Store
from hugproto import frames, patterns
from hugproto.errors import ProtocolError
from hugsim.phone.bleak_backend import airspace_backend

RESET_HOLD_MS = 10_300


_CARRIED = ("read_rsp", "write", "write_cmd", "notify", "indicate")


def _sniffed(entries: list[dict[str, Any]]) -> list[bytes]:
    """Every value read, written or notified, in order, from the airspace's passive recorder."""
    return [bytes.fromhex(e["value"]) for e in entries if e["kind"] in _CARRIED]


def _session_frames(values: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for v in values:
        try:
            kind = frames.frame_kind(v)
        except ProtocolError:
            continue
        if kind not in (frames.STATE, frames.AUTH, frames.PAIR_PUB, frames.BAND_PUB, frames.PAIR_CONFIRM):
            out.append(v)
    return out


def _windows(data: bytes, n: int) -> list[bytes]:
    return [data[i : i + n] for i in range(len(data) - n + 1)]


def _opens_any(key: bytes, nonces: list[tuple[bytes, bytes]], captured: list[bytes]) -> bool:
    for nb, np_ in nonces:
        for role in (frames.BAND, frames.PHONE):
            s = frames.Session(key, nb, np_, role)
            for f in captured:
                try:
                    s.open(f)
                    return True
                except ProtocolError:
                    s.rx_counter = 0
    return False


async def _day(w: World, owner: Phone) -> list[frames.Message]:
    """Taps (1 and 3), a squeeze, two Plays: what the owner's phone got."""
    got: list[frames.Message] = []
    for gesture in ("1", "3", "squeeze"):
        if gesture == "squeeze":
            await w.control.hold(w.address, 1500)
        else:
            for _ in range(int(gesture)):
                await w.control.hold(w.address, TAP_MS)
                await asyncio.sleep(0.15)
        msg = await owner.next_message(5)
        while not isinstance(msg, frames.Press):
            msg = await owner.next_message(5)
        got.append(msg)
        await owner.send(frames.Ack(msg.seq))
    for pattern, token in ((patterns.HUG, 501), (patterns.BIG_HUG, 502)):
        await owner.send(frames.Play(pattern, 3, 200, 1, token))
        got += await owner.messages_until_quiet(4.0)
    return got


class Recording:
    def __init__(self, captured: list[bytes], sealed: list[bytes], key: bytes, got: list[frames.Message]):
        self.captured, self.sealed, self.key, self.got = captured, sealed, key, got


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """A pairing and a short day on one band, as a sniffer in range recorded them."""
    result: list[Recording] = []

    async def scenario(w: World) -> None:
        owner = await w.paired_phone()
        await asyncio.sleep(2.5)
        got = await _day(w, owner)
        captured = _sniffed(await w.control.recording())
        result.append(Recording(captured, _session_frames(captured), owner.key, got))

    async def main() -> None:
        async with world(tmp_path_factory.mktemp("band")) as w:
            await asyncio.wait_for(scenario(w), 120)

    asyncio.run(main())
    rec = result[0]
    presses = [m for m in rec.got if isinstance(m, frames.Press)]
    assert [(p.gesture, p.value) for p in presses][:2] == [(frames.GESTURE_TAP, 1), (frames.GESTURE_TAP, 3)]
    assert sorted(m.token for m in rec.got if isinstance(m, frames.Felt)) == [501, 502]
    assert len(rec.sealed) >= 10, "the sniffer saw the session"
    return rec


def test_sniffing_a_pairing_reveals_no_key(recording: Recording) -> None:
    captured, sealed, key = recording.captured, recording.sealed, recording.key
    everything = b"".join(captured)
    # 1. the key never crosses the air (protocol 1 wrote it in clear in PairKey)
    assert key not in everything
    # 2. every 16 bytes on the air as the band key, with every pair of nonces seen: no frame opens
    band_nonces = [v[1:9] for v in captured if v and v[0] == frames.VERSION << 5 | frames.STATE]
    confirm_nonces = [v[1:9] for v in captured if v and v[0] == frames.VERSION << 5 | frames.PAIR_CONFIRM]
    assert band_nonces, "the sniffer saw the State"
    assert confirm_nonces, "the sniffer saw the pairing"
    pairs = [(nb, np_) for nb in band_nonces for np_ in confirm_nonces]
    candidates = {w16 for v in captured for w16 in _windows(v, 16)}
    assert len(candidates) >= 20
    assert not any(_opens_any(c, pairs, sealed[:4]) for c in candidates)
    # 3. both public keys (and every 32 bytes on the air) as the "shared secret": never the key
    pubs = [
        b"".join(v[2:] for v in captured if v and v[0] == frames.VERSION << 5 | kind)
        for kind in (frames.PAIR_PUB, frames.BAND_PUB)
    ]
    assert [len(p) for p in pubs] == [32, 32]
    for secret in {*pubs, *_windows(everything, 32)}:
        for nb, np_ in pairs:
            for label in (b"hug band key", b""):
                guess = hmac.new(secret, label + nb + np_ + pubs[0] + pubs[1], "sha256").digest()[:16]
                assert guess != key
    print(f"sniffed {len(captured)} values, {len(sealed)} session frames; tried {len(candidates)} keys")


def test_reading_frames_reveals_no_gesture_count_or_pattern(recording: Recording) -> None:
    sealed = recording.sealed
    presses = [m for m in recording.got if isinstance(m, frames.Press)]
    assert len(presses) == 3
    for p in presses:  # protocol 1 carried these in clear at bytes 5..13
        clear = struct.pack("<HBBHHB", p.seq, p.gesture, p.value, p.duration_ms, p.age_s, p.battery)
        assert not any(clear in f for f in sealed)
        assert not any(struct.pack("<H", p.seq) + bytes((p.gesture, p.value)) in f for f in sealed)
    plays = [f for f in sealed if f[0] & 0x1F == frames.PLAY]
    felts = [f for f in sealed if f[0] & 0x1F == frames.FELT]
    assert len(plays) == 2
    assert len(felts) == 2
    for pattern, token in ((patterns.HUG, 501), (patterns.BIG_HUG, 502)):
        assert not any(f[5:11] == struct.pack("<BBBBH", pattern, 3, 200, 1, token) for f in plays)
        assert not any(f[5:7] == struct.pack("<H", token) for f in felts)


def test_a_stranger_who_pairs_first_is_noticed_and_undone(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        scanner, client = airspace_backend(w.air)
        parent = Store(tmp_path / "parent.sqlite3")
        config = bandlink.BleConfig(scanner, client)
        await w.control.hold(w.address, PAIR_HOLD_MS)  # the parent opens the window
        await asyncio.sleep(1.0)  # the window's own buzz is over
        buzzes = await w.motor_on_count()
        stranger = Phone(w.central, w.on_air)  # ... and a stranger in range is quicker
        await stranger.connect()
        stolen = await stranger.pair()
        await asyncio.sleep(3.0)
        # the band confirms a pairing where the parent feels it: the wave, then the code's pulses
        assert await w.motor_on_count() - buzzes == 1 + stranger.code
        # while it stays connected the band is silent: the app does not blame the range alone
        with pytest.raises(bandlink.BandNotFound, match="another device is connected to it"):
            await bandlink.pair_band(config, parent, await w.on_air(), timeout=3)
        await stranger.disconnect()
        await asyncio.sleep(1.0)  # once the link is gone the band moves to a new address (its key changed)
        # the parent's app says what happened (it said "no band ... in range" before)
        with pytest.raises(bandlink.PairingTaken, match="another device paired with this band just now"):
            await bandlink.pair_band(config, parent, await w.control.wait_advertising(w.address))
        assert parent.bands() == []
        # a second try by the stranger in the same window is refused too (one pairing per window)
        again = Phone(w.central, w.on_air)
        await again.connect()
        state = await again.state(stolen)
        assert state.flags & frames.FLAG_JUST_PAIRED
        assert not state.flags & frames.FLAG_PAIRING_OPEN
        await again.disconnect()
        # hold 10 s: the band forgets the stranger; then the parent pairs
        await w.control.hold(w.address, RESET_HOLD_MS)
        await asyncio.sleep(3.0)  # the band resets and boots
        await w.control.hold(w.address, PAIR_HOLD_MS)
        found = await bandlink.pair_band(config, parent, await w.control.wait_advertising(w.address))
        assert 2 <= found.code <= 5
        assert parent.band(found.band_id).key != stolen
        thief = Phone(w.central, w.on_air)
        await thief.connect()
        with pytest.raises(ProtocolError):
            await thief.state(stolen)  # the band's State is MACed under the parent's key now

    async def main() -> None:
        async with world(tmp_path / "band") as w:
            await asyncio.wait_for(scenario(w), 150)

    asyncio.run(main())
