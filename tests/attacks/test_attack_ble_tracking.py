"""A passive sniffer records a day of hugs between two bands and their phones; can it follow a band?

The day (the real firmware on two virtual bands, each paired with its own phone through bleak over the
airspace): a stranger connects to each band and reads what any central may read, then the bands are
paired and spend the "day" going out of their phones' range and back (school, playground, home),
pressed and played to in between. Each band takes a new private address every ``ROTATE_S`` (900 s on
a band; 2 s here, so an "hour" is ``HOUR_MS``). The airspace's recorder captures every advert, link
and GATT byte with addresses and times, as a sniffer in range of everything would.

What the sniffer sees is analysed as an attacker would, without the ground truth; the ground truth
(which band each entry came from) only scores the attack. Before this branch a band advertised one
fixed address and the name "Hug-C60E", so every two sightings linked.

A last test copies a band's advert to another address: the owner's phone does not take it for its band.

The same recording holds no band key (the pairing agrees it by X25519) and no tap count or pattern
(session frames are encrypted): the last checks read it as an attacker would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hugapp.core import bandlink
from hugapp.core.bandlink import BandLink, BleConfig, LinkState
from hugapp.core.store import Store
from hugband import board as boards
from hugproto import adv, frames, gatt, patterns
from hugproto.mac import Hmac
from hugsim.airspace import Airspace, AirspaceCentral, AirspaceControl, PeripheralRadio
from hugsim.band.process import BandProcess
from hugsim.phone.bleak_backend import airspace_backend

ROTATE_S = 2
HOUR_MS = 4 * ROTATE_S * 1000  # four address periods: an hour on a band (900 s each)
ROUNDS = 6  # times each band leaves its phone's range and comes back
PAIR_HOLD_MS = 5300
TAP_MS = 80
GAP_NAME_HANDLE = 3  # the GAP device name: any central may read it


@dataclass
class Wearer:
    band: BandProcess
    store: Store
    config: BleConfig
    central: str  # the phone's radio, by name in the airspace
    band_id: str = ""
    taps: list[int] = field(default_factory=list)  # the tap counts pressed, in order
    presses: list[tuple[str, int]] = field(default_factory=list)
    felt: list[int] = field(default_factory=list)
    found_after: list[float] = field(default_factory=list)  # s from back in range to connected again


@dataclass
class Day:
    entries: list[dict[str, Any]]  # what the sniffer captured, each with its ground-truth "node"
    wearers: list[Wearer]
    strangers: set[str]  # the addresses the stranger's central used

    def sniffed(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "node"} for e in self.entries]


def _board() -> str:
    board = boards.load()
    board["address_rotate_s"] = ROTATE_S
    return json.dumps(board)


@contextlib.asynccontextmanager
async def _world(tmp: Path) -> AsyncIterator[tuple[Airspace, AirspaceControl, list[Wearer]]]:
    server = Airspace(record_path=str(tmp / "sniffer.jsonl"))
    air = await server.start()
    bands = [BandProcess(air, tmp / f"band{i}", flash_files={"board.json": _board()}) for i in range(2)]
    try:
        await asyncio.gather(*(b.start() for b in bands))
        async with AirspaceControl(air) as control:
            wearers = []
            for i, band in enumerate(bands):
                scanner, client = airspace_backend(air, f"phone{i}")
                wearers.append(
                    Wearer(band, Store(tmp / f"phone{i}.sqlite3"), BleConfig(scanner, client), f"phone{i}")
                )
            yield server, control, wearers
    finally:
        await asyncio.gather(*(b.kill() for b in bands))
        await server.close()


async def _until(changed: asyncio.Condition, predicate: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout), changed:
        await changed.wait_for(predicate)


async def _stranger_reads(air: str, control: AirspaceControl, band: BandProcess) -> str:
    """A stranger connects and reads the name and the device information, as any central may;
    returns its own address."""
    async with AirspaceCentral(air, name="stranger") as central:
        conn = await central.connect(await control.wait_advertising(band.address), timeout=10)
        await conn.read(GAP_NAME_HANDLE)
        for uuid in (gatt.MANUFACTURER_NAME_UUID, gatt.MODEL_NUMBER_UUID, gatt.FIRMWARE_REVISION_UUID):
            char = conn.get_characteristic(gatt.uuid16_str(uuid))
            assert char is not None
            await conn.read(char.handle)
        await conn.disconnect()
        return str(central.address)


async def _pair(control: AirspaceControl, w: Wearer) -> None:
    await control.hold(w.band.address, PAIR_HOLD_MS)
    ready = [b for b in await bandlink.scan_bands(w.config, 1.0) if b.pairing_open]
    assert len(ready) == 1, ready
    w.band_id = (await bandlink.pair_band(w.config, w.store, ready[0].address, "band")).band_id


def _link(w: Wearer, changed: asyncio.Condition) -> BandLink:
    async def poke() -> None:
        async with changed:
            changed.notify_all()

    async def on_press(band: str, seq: int) -> None:
        w.presses.append((band, seq))
        await poke()

    async def on_felt(_band: str, token: int) -> None:
        w.felt.append(token)
        await poke()

    def on_state(_state: LinkState) -> None:
        pokes.add(asyncio.ensure_future(poke()))

    pokes: set[asyncio.Future[None]] = set()
    return BandLink(
        w.store, w.band_id, w.config, on_press, on_felt, on_state, scan_timeout=2.0, max_backoff=1.0
    )


async def _record_day(tmp: Path) -> Day:
    async with _world(tmp) as (server, control, wearers):
        strangers = {await _stranger_reads(server.address, control, w.band) for w in wearers}
        for w in wearers:
            await _pair(control, w)
        changed = asyncio.Condition()
        links = [_link(w, changed) for w in wearers]
        tasks = [asyncio.ensure_future(link.run()) for link in links]
        try:
            for n in range(ROUNDS):
                await _until(changed, lambda: all(link.state is LinkState.CONNECTED for link in links), 30)
                for w, link in zip(wearers, links, strict=True):
                    taps = 1 + (n + len(w.taps)) % 3
                    for _ in range(taps):
                        await control.hold(w.band.address, TAP_MS)
                        await asyncio.sleep(0.12)
                    w.taps.append(taps)
                    await _until(changed, lambda w=w: len(w.presses) == len(w.taps))
                    await link.play(patterns.HUG, 1 + n % 3, 255, taps)
                await _until(changed, lambda n=n: all(len(w.felt) > n for w in wearers))
                # off to school: out of the phones' range, advertising to anyone for a while
                for w in wearers:
                    await control.out_of_range(w.band.address, central=w.central)
                await asyncio.sleep(ROTATE_S * 1.6)
                back = asyncio.get_running_loop().time()
                for w in wearers:
                    await control.in_range(w.band.address, central=w.central)
                for w, link in zip(wearers, links, strict=True):  # at a new address by now
                    await _until(changed, lambda link=link: link.state is LinkState.CONNECTED, 30)
                    w.found_after.append(asyncio.get_running_loop().time() - back)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        entries = await control.recording(truth=True)
        assert (tmp / "sniffer.jsonl").read_text().count("\n") >= len(entries)  # also on file
        return Day(entries, wearers, strangers)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return asyncio.run(asyncio.wait_for(_record_day(tmp_path_factory.mktemp("day")), 300))


def _sightings(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["kind"] == "adv"]


def _token(e: dict[str, Any]) -> bytes | None:
    return adv.hug_token(bytes.fromhex(e["adv"]))


def test_nothing_on_the_air_names_a_band(day: Day) -> None:
    sniffed = day.sniffed()
    sightings = _sightings(sniffed)
    names = {adv.local_name(bytes.fromhex(e["adv"])) for e in sightings}
    names |= {adv.local_name(bytes.fromhex(e["resp"])) for e in sightings if e["resp"]}
    gap = {
        bytes.fromhex(e["value"])
        for e in sniffed
        if e["kind"] == "read_rsp" and e["handle"] == GAP_NAME_HANDLE
    }
    reads = {e["value"] for e in sniffed if e["kind"] == "read_rsp"}
    with_resp = sum(1 for e in sightings if e["resp"])
    print(f"\n{len(sightings)} adverts, {with_resp} with a scan response; names {names - {None}};", end=" ")
    print(f"GAP names {gap}")
    assert names == {None}, "a name on the air"
    assert all(e["resp"] == "" for e in sightings), "a scan response on the air"
    assert gap == {b"Hug Button"}  # read from both bands: the product's name, the same on every band
    # what a stranger can read of the two bands is the same for both (model, firmware, name)
    per_band = [
        [
            e["value"]
            for e in day.entries
            if e["kind"] == "read_rsp" and e["node"] == w.band.address and e["central"] in day.strangers
        ]
        for w in day.wearers
    ]
    assert reads
    assert len(per_band[0]) == 4
    assert per_band[0] == per_band[1]


def test_sightings_an_hour_apart_cannot_be_linked(day: Day) -> None:
    """The attacker links two sightings when they share the address or the token (or the whole advert);
    the ground truth counts the pairs it should have linked."""
    truth = _sightings(day.entries)
    seen = _sightings(day.sniffed())
    pairs = same_band = linked = linked_wrongly = 0
    for (a, ta), (b, tb) in itertools.combinations(zip(seen, truth, strict=True), 2):
        if abs(b["t_ms"] - a["t_ms"]) < HOUR_MS:
            continue
        pairs += 1
        same = ta["node"] == tb["node"]
        same_band += same
        link = a["address"] == b["address"] or _token(a) == _token(b) or a["adv"] == b["adv"]
        linked += link and same
        linked_wrongly += link and not same
    addresses = {e["address"] for e in seen}
    tokens = {_token(e) for e in seen}
    per_band = {
        w.band.address: {e["address"] for e in truth if e["node"] == w.band.address} for w in day.wearers
    }
    span_s = (seen[-1]["t_ms"] - seen[0]["t_ms"]) / 1000
    print(
        f"\n{len(seen)} sightings over {span_s:.0f} s (a new address every {ROTATE_S} s, 'an hour' = "
        f"{HOUR_MS / 1000:.0f} s); {len(addresses)} addresses, {len(tokens)} tokens; addresses per band "
        f"{[len(v) for v in per_band.values()]}; {pairs} pairs an hour apart, {same_band} of one band; "
        f"linked by address, token or advert: {linked} (wrongly {linked_wrongly})"
    )
    assert min(len(v) for v in per_band.values()) >= ROUNDS // 2, "the bands did not change address"
    assert same_band > 0
    assert linked == 0, "two sightings of one band an hour apart were linked"
    # a new address always comes with a new token: no advert links an old address to a new one
    by_address: dict[str, set[bytes | None]] = {}
    for e in seen:
        by_address.setdefault(e["address"], set()).add(_token(e))
    owners = {tok: addr for addr, toks in by_address.items() for tok in toks}
    assert len(owners) == sum(len(t) for t in by_address.values()), "one token at two addresses"


def test_only_its_owner_recognises_the_band(day: Day) -> None:
    """The owner's phone matches the token of every advert its band made after pairing; the other
    phone matches none of them. The phones found their bands each time they came back (the day waits
    for it; the figure is printed)."""
    keys = {w.band.address: w.store.band(w.band_id).key for w in day.wearers}
    idents = {node: Hmac(adv.identity_key(key)) for node, key in keys.items()}
    mine = theirs = total = 0
    for e in _sightings(day.entries):
        state = adv.hug_state(bytes.fromhex(e["adv"]))
        if not state & frames.FLAG_PAIRED:
            continue
        total += 1
        address = bytes.fromhex(e["address"].replace(":", ""))
        for node, ident in idents.items():
            match = adv.recognise(ident, address, adv.hug_data(bytes.fromhex(e["adv"])) or b"") >= 0
            mine += match and node == e["node"]
            theirs += match and node != e["node"]
    found = sorted(t for w in day.wearers for t in w.found_after)
    print(
        f"\n{total} adverts of paired bands: recognised by their owner {mine}, by the other phone {theirs}; "
        f"back in range, a phone found and connected to its band (at a new address) in "
        f"{found[len(found) // 2]:.2f} s (median), {found[-1]:.2f} s (max) of {len(found)} returns"
    )
    assert total > 0
    assert mine == total
    assert theirs == 0


def _values(day: Day) -> list[bytes]:
    return [bytes.fromhex(e["value"]) for e in day.entries if "value" in e and isinstance(e["value"], str)]


def test_the_band_key_is_not_in_the_recording(day: Day) -> None:
    keys = [w.store.band(w.band_id).key for w in day.wearers]
    found = [k.hex() for k in keys if any(k in v for v in _values(day))]
    print(f"\nband keys found in {len(_values(day))} recorded values: {len(found)} of {len(keys)}")
    assert found == []


def test_no_tap_count_or_pattern_readable_from_the_recording(day: Day) -> None:
    """The attacker takes every notification whose first byte says Press, and every write whose first
    byte says Play, and reads the fields where version 1 keeps them (after the header and the u32
    counter), whatever the length; then compares with what was really pressed and played."""
    pressed = sorted(t for w in day.wearers for t in w.taps)
    got: list[int] = []
    plays = hugs = 0
    for e in day.sniffed():
        value = bytes.fromhex(e.get("value") or "")
        if e["kind"] == "notify" and len(value) >= 9 and value[0] & 0x1F == frames.PRESS:
            _seq, gesture, taps = struct.unpack_from("<HBB", value, 5)
            if gesture == frames.GESTURE_TAP:
                got.append(taps)
        if e["kind"] == "write" and len(value) >= 6 and value[0] & 0x1F == frames.PLAY:
            plays += 1
            hugs += value[5] == patterns.HUG
    print(f"\n{len(pressed)} presses: tap counts read {sorted(got)}; {hugs} of {plays} Plays read as hugs")
    assert sorted(got) != pressed, "the tap counts are readable"
    assert hugs * 2 < len(pressed), "the patterns are readable"  # every Play was a hug


def test_a_copied_advert_elsewhere_is_not_the_band(tmp_path: Path) -> None:
    """A stranger re-broadcasts a band's advert (token and all) from its own address, while the band
    is out of its phone's range: the phone does not take it for its band."""

    async def main() -> None:
        async with _world(tmp_path) as (server, control, wearers):
            w = wearers[0]
            await _pair(control, w)
            key = w.store.band(w.band_id).key
            await control.wait_advertising(w.band.address)
            entries = await control.recording(truth=True)
            copied = next(e for e in reversed(entries) if e["kind"] == "adv" and e["node"] == w.band.address)
            assert adv.hug_state(bytes.fromhex(copied["adv"])) == frames.FLAG_PAIRED  # with its owner's token
            fake = await asyncio.to_thread(PeripheralRadio, server.address, "C0:FF:EE:66:66:66")
            try:
                fake.set_address("2B:AD:C0:FF:EE:01")
                fake.advertise(100_000, bytes.fromhex(copied["adv"]))
                await control.out_of_range(w.band.address, central=w.central)
                heard = await bandlink.scan_bands(w.config, 1.0, known=w.store.bands())
                (copy,) = [b for b in heard if b.address == "2B:AD:C0:FF:EE:01"]
                assert [b.band_id for b in heard] == ["" for _ in heard]  # the copy is not taken for it
                assert await bandlink.find_band(w.config, key, 1.5) is None
                await control.in_range(w.band.address, central=w.central)
                found = await bandlink.find_band(w.config, key, 5)
                assert found is not None
                theirs = {
                    e["address"] for e in await control.recording(truth=True) if e["node"] == w.band.address
                }
                assert found.address in theirs  # one of the band's own addresses (it changes every 2 s here)
                print(f"\na copied advert at another address is {copy.name!r} to the phone", end="; ")
                print(f"the band is found at {found.address}")
            finally:
                await asyncio.to_thread(fake.close)

    asyncio.run(asyncio.wait_for(main(), 120))
