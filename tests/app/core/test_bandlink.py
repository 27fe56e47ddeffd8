"""The companion's band link (hugapp.core.bandlink) on bleak, through BOTH paths:

- "airspace": bleak with the custom airspace backend passed through `backend=`;
- "bluez": bleak's own Linux BlueZ backend, unmodified, talking to a simulated org.bluez on a
  private dbus-daemon that fronts the same airspace.

The band is the real firmware on a virtual band process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from bluez_support import simulated_bluez

from hugapp.core import bandlink
from hugapp.core.bandlink import BandLink, BleConfig, LinkState
from hugapp.core.store import Store
from hugband import board as boards
from hugproto import gatt, patterns
from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.process import BandProcess
from hugsim.phone.bleak_backend import airspace_backend

TAP_MS = 80
PATHS = ["airspace", "bluez"]


class Rig:
    def __init__(self, air: str, band: BandProcess, control: AirspaceControl, config: BleConfig, tmp: Path):
        self.air = air
        self.band = band
        self.control = control
        self.config = config
        self.tmp = tmp
        self.store = Store(tmp / "phone.sqlite3")
        self.band_id = ""  # the phone's id for the band, once paired
        self.pressed: list[tuple[str, int]] = []
        self.felt: list[int] = []
        self.links: list[asyncio.Task[None]] = []
        self.changed = asyncio.Condition()
        self._pokes: set[asyncio.Task[None]] = set()

    def poke(self) -> None:
        async def notify() -> None:
            async with self.changed:
                self.changed.notify_all()

        task = asyncio.ensure_future(notify())
        self._pokes.add(task)
        task.add_done_callback(self._pokes.discard)

    @property
    def address(self) -> str:
        """The band's identity: the airspace's handle on it, never on the air."""
        return self.band.address

    async def motor_runs(self) -> int:
        return len(await self.control.motor_starts(self.address))

    async def pair(self) -> None:
        """Hold the heart, find "a band ready to pair" (or ours, re-pairing) in a scan, pair it."""
        await self.control.hold(self.address, 5300)
        found = await bandlink.scan_bands(self.config, timeout=1.5, known=self.store.bands())
        ready = [b for b in found if b.pairing_open]
        assert [b.address for b in ready] == [await self.control.air_address(self.address)]
        assert ready[0].band_id == self.band_id  # ours again (re-pairing) or "" (a new band)
        if not self.band_id:
            assert ready[0].name == bandlink.READY_TO_PAIR
        paired = await bandlink.pair_band(self.config, self.store, ready[0].address, name="Mia's band")
        assert paired.band_id == (self.band_id or bandlink.band_id(self.store.band(paired.band_id).key))
        self.band_id = paired.band_id
        await asyncio.sleep(0.5)  # a hand lets go of the heart before pressing again

    def link(self, store: Store | None = None, max_backoff: float = 2.0) -> BandLink:
        async def on_press(band_id: str, seq: int) -> None:
            self.pressed.append((band_id, seq))
            self.poke()

        async def on_felt(_band_id: str, token: int) -> None:
            self.felt.append(token)
            self.poke()

        link = BandLink(
            store or self.store,
            self.band_id,
            self.config,
            on_press=on_press,
            on_felt=on_felt,
            on_state=lambda _state: self.poke(),
            scan_timeout=2.0,
            max_backoff=max_backoff,
        )
        self.links.append(asyncio.ensure_future(link.run()))
        return link

    async def stop_links(self) -> None:
        for task in self.links:
            task.cancel()
        await asyncio.gather(*self.links, return_exceptions=True)
        self.links.clear()

    async def tap(self) -> None:
        await self.control.hold(self.address, TAP_MS)

    async def until(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)


@contextlib.asynccontextmanager
async def rig(path: str, tmp: Path, board: dict[str, Any] | None = None) -> AsyncIterator[Rig]:
    """An airspace with one band (``board`` overrides the default board file's values)."""
    server = Airspace()
    air = await server.start()
    flash = {} if board is None else {"board.json": json.dumps({**boards.load(), **board})}
    band = BandProcess(air, tmp / "band", flash_files=flash)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(server.close)
        stack.push_async_callback(band.kill)
        await band.start()
        if path == "bluez":
            await stack.enter_async_context(simulated_bluez(air))
            config = BleConfig()
        else:
            scanner, client = airspace_backend(air)
            config = BleConfig(scanner, client)
        control = await stack.enter_async_context(AirspaceControl(air))
        r = Rig(air, band, control, config, tmp)
        stack.push_async_callback(r.stop_links)
        yield r


def run(
    path: str,
    tmp: Path,
    scenario: Callable[[Rig], Awaitable[None]],
    timeout: float = 120,
    board: dict[str, Any] | None = None,
) -> None:
    async def main() -> None:
        async with rig(path, tmp, board) as r:
            await asyncio.wait_for(scenario(r), timeout)

    asyncio.run(main())


@pytest.mark.parametrize("path", PATHS)
def test_pair_press_play_and_battery(path: str, tmp_path: Path) -> None:
    async def scenario(r: Rig) -> None:
        await r.pair()
        band = r.store.band(r.band_id)
        assert band.name == "Mia's band"
        assert len(band.key) == 16
        link = r.link()
        await asyncio.wait_for(link.connected.wait(), 20)
        assert link.battery is not None
        assert 0 <= link.battery <= 100
        assert r.store.band(r.band_id).battery == link.battery
        await r.tap()
        await r.until(lambda: len(r.pressed) == 1)
        before = await r.motor_runs()
        token = await link.play(patterns.HUG, 1, 255, 1)
        await r.until(lambda: token in r.felt)
        assert await r.motor_runs() > before
        presses = r.store.presses(r.band_id)
        assert [(p.seq, p.gesture, p.value) for p in presses] == [(r.pressed[0][1], 1, 1)]
        assert r.pressed[0][0] == r.band_id

    run(path, tmp_path, scenario)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("op", ["notify", "write"])
@pytest.mark.parametrize("path", PATHS)
def test_press_exactly_once_across_link_drops(path: str, op: str, when: str, tmp_path: Path) -> None:
    """The link drops in the middle of the press notification or of its acknowledgement."""

    async def scenario(r: Rig) -> None:
        await r.pair()
        link = r.link()
        await asyncio.wait_for(link.connected.wait(), 20)
        await asyncio.sleep(0.5)  # SetTime and the battery read are done
        await r.control.drop_after(r.address, op=op, n=1, when=when)
        await r.tap()
        await r.until(lambda: link.stats.connects >= 2 and link.state is LinkState.CONNECTED, 30)
        await asyncio.sleep(2.0)  # anything resent has arrived
        assert len(r.store.presses(r.band_id)) == 1, "the press must be stored exactly once"
        assert len(r.pressed) == 1, "and handed on exactly once"

    run(path, tmp_path, scenario)


@pytest.mark.parametrize("path", PATHS)
def test_a_band_at_a_new_address_as_its_link_drops_is_back_at_once(path: str, tmp_path: Path) -> None:
    """The band takes a new address the moment each link ends (address_rotate_s 1): the phone's
    straight reconnect to the old address is overtaken by the look that hears the new one, so each
    press arrives well inside the straight reconnect's 5 s wait."""

    async def scenario(r: Rig) -> None:
        await r.pair()
        link = r.link()
        await asyncio.wait_for(link.connected.wait(), 20)
        for round_ in range(4):
            await asyncio.sleep(1.2)  # a new address is due
            before = await r.control.air_address(r.address)
            await r.control.drop_link(r.address)
            t0 = time.monotonic()
            await r.tap()
            await r.until(lambda round_=round_: len(r.pressed) == round_ + 1, 30)
            took = time.monotonic() - t0
            await r.until(lambda: link.state is LinkState.CONNECTED, 30)
            assert await r.control.air_address(r.address) != before, f"round {round_}: no new address"
            print(f"press {round_}: {took:.2f} s")
            assert took < bandlink.STRAIGHT_BACK_TIMEOUT_S / 2, f"press {round_} took {took:.2f} s"
        assert len(r.store.presses(r.band_id)) == 4

    run(path, tmp_path, scenario, board={"address_rotate_s": 1})


@pytest.mark.parametrize("path", PATHS)
def test_band_reboot_with_unacked_presses(path: str, tmp_path: Path) -> None:
    async def scenario(r: Rig) -> None:
        await r.pair()
        for _ in range(3):  # the phone is away
            await r.tap()
            await asyncio.sleep(0.7)
        await r.band.restart()  # pull the battery; boot from the same flash
        link = r.link()
        await r.until(lambda: len(r.pressed) == 3, 30)
        await asyncio.sleep(1.5)
        assert len(r.store.presses(r.band_id)) == 3
        seqs = [p.seq for p in r.store.presses(r.band_id)]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(3)]
        assert link.stats.presses_duplicate == 0

    run(path, tmp_path, scenario)


@pytest.mark.parametrize("path", PATHS)
def test_second_phone_without_the_key(path: str, tmp_path: Path) -> None:
    async def scenario(r: Rig) -> None:
        await r.pair()
        await asyncio.sleep(2.5)  # the pairing buzzes are over
        runs = await r.motor_runs()
        thief = Store(r.tmp / "thief.sqlite3")
        # cannot pair again in the window the owner used (and is told why)
        with pytest.raises(bandlink.PairingTaken, match="another device paired with this band just now"):
            await bandlink.pair_band(r.config, thief, await r.control.air_address(r.address))
        # a guessed key: never authenticates, so cannot read presses or make the band buzz
        thief.save_band(r.band_id, "stolen", bytes(range(16)))
        stolen = r.link(thief)
        await r.tap()
        await asyncio.sleep(6)
        assert stolen.stats.connects == 0
        assert thief.presses() == []
        with pytest.raises(bandlink.BandUnavailable):
            await stolen.play(patterns.BIG_HUG, 0, 255, 5)
        assert await r.motor_runs() == runs, "the band buzzed for a stranger"
        await r.stop_links()
        # the owner still gets the press
        r.link()
        await r.until(lambda: len(r.pressed) == 1, 20)

    run(path, tmp_path, scenario, timeout=150)


@pytest.mark.parametrize("path", PATHS)
def test_repair_replaces_the_key_and_forget_removes_the_band(path: str, tmp_path: Path) -> None:
    async def scenario(r: Rig) -> None:
        await r.pair()
        first_key = r.store.band(r.band_id).key
        await asyncio.sleep(1.0)
        await r.pair()  # the wearer holds the heart again: a new key replaces the old one, same id
        second_key = r.store.band(r.band_id).key
        assert second_key != first_key
        link = r.link()
        await r.until(lambda: link.state is LinkState.CONNECTED, 20)
        await link.forget()
        await r.stop_links()
        assert r.store.bands() == []
        found = await bandlink.scan_bands(r.config, timeout=1.5)
        on_air = await r.control.air_address(r.address)
        assert [(b.address, b.paired) for b in found] == [(on_air, False)], "the band dropped its key"

    run(path, tmp_path, scenario)


def test_a_link_that_keeps_dropping_after_working_reconnects_at_once(tmp_path: Path) -> None:
    """Failed attempts back off (up to 30 s); a link that worked and then dropped does not count as
    one, however often it happens."""

    async def scenario(r: Rig) -> None:
        await r.pair()
        link = r.link(max_backoff=30.0)
        await r.until(lambda: link.state is LinkState.CONNECTED, 20)
        for n in range(2, 8):
            await r.control.drop_link(r.address)
            await r.until(lambda n=n: link.stats.connects >= n and link.state is LinkState.CONNECTED, 5)

    run("airspace", tmp_path, scenario)


@pytest.mark.parametrize(
    ("header", "words"), [(0x21, "update the band's firmware"), (0x61, "update this app")]
)
def test_a_band_on_another_protocol_version_is_named(header: int, words: str) -> None:
    """A band still on protocol 1 (or already on 3) gets a clear error, not a MAC failure."""
    from types import SimpleNamespace
    from typing import cast

    from hugproto import gatt

    state = bytes([header]) + bytes(15)
    chars = [
        SimpleNamespace(uuid=u) for u in (gatt.EVENT_CHAR_UUID, gatt.COMMAND_CHAR_UUID, gatt.STATE_CHAR_UUID)
    ]
    service = SimpleNamespace(characteristics=chars)

    async def read_gatt_char(_char: object) -> bytearray:
        return bytearray(state)

    client = SimpleNamespace(
        services=SimpleNamespace(get_service=lambda _u: service), read_gatt_char=read_gatt_char
    )
    channel = bandlink._Channel(cast("Any", client))  # pyright: ignore[reportPrivateUsage]
    with pytest.raises(bandlink.ProtocolMismatch, match=words):
        asyncio.run(channel.read_state(None))


def test_a_press_whose_notification_found_no_buffer_is_not_lost(tmp_path: Path) -> None:
    """The band's controller is out of buffers for one press notification and the next goes out:
    the link sees the gap in the session, does not acknowledge past it (acks are cumulative) and
    starts again, and the band sends both presses."""

    async def scenario(r: Rig) -> None:
        await r.pair()
        link = r.link()
        await asyncio.wait_for(link.connected.wait(), 20)
        await asyncio.sleep(0.5)  # SetTime and the battery read are done
        await r.control.notify_busy(r.address, n=1, uuid=gatt.EVENT_CHAR_UUID)
        await r.tap()
        await asyncio.sleep(1.0)  # a press of its own, not a double tap
        await r.tap()
        await r.until(lambda: len(r.store.presses(r.band_id)) >= 2, 30)
        await asyncio.sleep(2.0)  # anything resent has arrived
        assert len(r.store.presses(r.band_id)) == 2, "both presses stored, once each"
        assert len(r.pressed) == 2, "and handed on once each"
        assert link.stats.frames_missing == 1

    run("airspace", tmp_path, scenario)
