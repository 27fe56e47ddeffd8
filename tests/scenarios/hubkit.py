"""A band at school: one airspace, a real band process, a broker, a classroom hub and the band's owner.

The owner's phone pairs the band next to it (central "phone"), then the band goes to school: out of
the phone's range, in the hub's (central "hub"). The owner enrols the band at the hub with the hub's
code and drives it with its unchanged BandLink through the hub tunnel's bleak backend::

    async with school(tmp, broker) as s:
        await s.pair_and_leave()
        await s.enrol()
        link = s.link()                     # BandLink over the hub
        await s.control.hold(s.band.address, TAP_MS)
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
from bleak.exc import BleakError
from relaykit import TestBroker

from hugapp.core import bandlink
from hugapp.core.bandlink import BandLink, BleConfig
from hugapp.core.hub import Hub, HubStore, enrol_at_hub, offer_enrolment
from hugapp.core.hubtunnel import HubTunnel
from hugapp.core.store import Store
from hugproto import gatt, patterns
from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.process import BandProcess
from hugsim.phone.bleak_backend import airspace_backend

PAIR_HOLD_MS = 5300
TAP_MS = 80


def pulses(pattern: int, signature: int, intensity: int, repeat: int) -> int:
    """How many times the motor starts from rest when a band plays this once."""
    steps = bytearray(patterns.BUFFER_SIZE)
    n = patterns.render(pattern, signature, intensity, repeat, steps)
    starts, on = 0, False
    for i in range(n):
        now_on = steps[2 * i] > 0
        starts += now_on and not on
        on = now_on
    return starts


async def enrol_shows(stdout: asyncio.StreamReader) -> list[str]:
    """What `hugbutton hub enrol` shows, up to the QR's text (the last line, what a scanner reads):
    the words, then the QR drawn in text."""
    shown: list[str] = []
    while not shown or not shown[-1].startswith("hugbutton:hub:"):
        shown.append((await asyncio.wait_for(stdout.readline(), 60)).decode().strip())
    return shown


class TamperingHub(Hub):
    """A hostile hub: flips a bit in what it carries, replays it, drops it, swaps it with the next, or
    injects frames of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flip_notifications = False
        self.flip_writes = False
        self.replay = False
        self.drop_notifications = 0  # how many of the next notifications to drop
        self.swap_notifications = 0  # how many of the next pairs of notifications to carry newer first
        self.swap_writes = 0  # how many of the next pairs of writes to carry newer first
        self.swapped = 0  # pairs carried in the wrong order so far
        self.written: list[bytes] = []  # every command the owner wrote, as the hub saw it
        self._held_notification: dict[str, Any] | None = None
        self._held_write: dict[str, Any] | None = None

    def _send(self, served: Any, msg: dict[str, Any]) -> None:
        if msg["t"] == "n" and self.drop_notifications > 0:
            self.drop_notifications -= 1
            return
        if msg["t"] == "n" and (self.swap_notifications > 0 or self._held_notification is not None):
            held, self._held_notification = self._held_notification, None
            if held is None or held["l"] != msg["l"]:
                self._held_notification = msg  # kept back until the band says something more
                return
            self.swap_notifications -= 1
            self.swapped += 1
            super()._send(served, msg)  # the newer first, then the older, each with the next counter
            served.counter += 1
            super()._send(served, {**held, "k": served.counter})
            return
        if msg["t"] == "n" and (self.flip_notifications or self.replay):
            value = bytearray.fromhex(msg["v"])
            if self.flip_notifications and value:
                value[-1] ^= 0x01
                msg = {**msg, "v": value.hex()}
            super()._send(served, msg)
            if self.replay:  # the same frame again, as a new notification of the link
                served.counter += 1
                super()._send(served, {**msg, "k": served.counter})
            return
        super()._send(served, msg)

    async def _serve(self, served: Any, msg: dict[str, Any]) -> dict[str, Any]:
        if msg["t"] == "write" and (self.swap_writes > 0 or self._held_write is not None):
            self.written.append(bytes.fromhex(msg["v"]))
            held, self._held_write = self._held_write, None
            if held is None or held["l"] != msg["l"]:
                self._held_write = msg  # "written", says the hub; it waits for the next one
                return {}
            self.swap_writes -= 1
            self.swapped += 1
            answer = await super()._serve(served, msg)
            with contextlib.suppress(BleakError):
                await super()._serve(served, held)
            return answer
        if msg["t"] == "write":
            value = bytearray.fromhex(msg["v"])
            self.written.append(bytes(value))
            if self.flip_writes and value:
                value[-1] ^= 0x01
                msg = {**msg, "v": value.hex()}
            answer = await super()._serve(served, msg)
            if self.replay:
                with contextlib.suppress(BleakError):
                    await super()._serve(served, msg)
            return answer
        return await super()._serve(served, msg)

    async def inject(self, frames: list[bytes]) -> int:
        """Write frames of the hub's own making to the bands it holds links to; how many it wrote."""
        written = 0
        for served in self.served.values():
            for frame in frames:
                if served.client is None:
                    break
                msg = {"t": "write", "l": served.link, "h": self.command_handle(served), "v": frame.hex()}
                with contextlib.suppress(BleakError):
                    await super()._serve(served, msg)
                    written += 1
        return written

    @staticmethod
    def command_handle(served: Any) -> int:
        for service in served.client.services:
            for char in service.characteristics:
                if char.uuid.lower() == gatt.COMMAND_CHAR_UUID:
                    return int(char.handle)
        raise AssertionError("no command characteristic")


class BrokerSniffer:
    """Everything published on the broker (a '#' subscription, as a curious operator would have)."""

    def __init__(self, broker: TestBroker) -> None:
        self.broker = broker
        self.seen: list[tuple[str, bytes]] = []
        self._task: asyncio.Task[None] | None = None

    async def _listen(self, ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", self.broker.port, identifier="sniffer") as client:
            await client.subscribe("#", qos=0)
            ready.set()
            async for message in client.messages:
                self.seen.append((str(message.topic), bytes(message.payload)))  # type: ignore[arg-type]

    async def __aenter__(self) -> BrokerSniffer:
        ready = asyncio.Event()
        self._task = asyncio.ensure_future(self._listen(ready))
        await asyncio.wait_for(ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class HubProcess:
    """`hugbutton hub run` as its own process, killable like a real box losing power."""

    def __init__(self, data: Path, broker_url: str, air: str) -> None:
        self.args = [
            "-m",
            "hugapp.cli",
            "hub",
            "--data",
            str(data),
            "--broker",
            broker_url,
            "--airspace",
            air,
            "run",
        ]
        self.log = data / "hub.log"  # what it said, each run after the last
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *self.args, stdout=log, stderr=log
            )
        for _ in range(300):  # it says so once it is up (30 s at most)
            if b"hub serving" in self.log.read_bytes().rsplit(b"exited", 1)[-1]:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("the hub did not start:\n" + self.log.read_text())

    async def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
            with self.log.open("ab") as log:
                log.write(b"--- exited\n")


class School:
    def __init__(self, tmp: Path, air: str, band: BandProcess, control: AirspaceControl, broker: TestBroker):
        self.tmp = tmp
        self.air = air
        self.band = band
        self.control = control
        self.broker = broker
        self.phone = BleConfig(*airspace_backend(air, "phone"))
        self.hub_radio = BleConfig(*airspace_backend(air, "hub"))
        self.store = Store(tmp / "owner.sqlite3")
        self.hub_store = HubStore(tmp / "hub")
        self.band_id = ""
        self.pressed: list[int] = []
        self.press_times: list[float] = []  # when each press reached the owner (time.time())
        self.felt: list[int] = []
        self.changed = asyncio.Event()
        self.hub: Hub | None = None
        self.tunnel: HubTunnel | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.links: list[tuple[BandLink, asyncio.Task[None]]] = []
        self._hub_task: asyncio.Task[None] | None = None

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.append(task)
        return task

    async def until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await asyncio.wait({asyncio.ensure_future(self.changed.wait())}, timeout=0.2)

    async def pair_and_leave(self) -> None:
        """Paired next to the phone; then the band is at school: in the hub's range, not the phone's."""
        await self.pair()
        await self.leave()

    async def leave(self) -> None:
        await self.control.out_of_range(self.band.address, central="phone")

    async def pair(self) -> None:
        await self.control.hold(self.band.address, PAIR_HOLD_MS)
        found = await bandlink.scan_bands(self.phone, timeout=1.5)
        ready = [b for b in found if b.pairing_open]
        paired = await bandlink.pair_band(self.phone, self.store, ready[0].address, name="Mia's band")
        self.band_id = paired.band_id
        await asyncio.sleep(1.5)  # the confirming buzzes are over

    def start_hub(self, kind: type[Hub] = Hub) -> Hub:
        self.hub = kind(self.hub_store, self.broker.url, self.hub_radio)
        self._hub_task = asyncio.ensure_future(self.hub.run())
        return self.hub

    async def stop_hub(self) -> None:
        task, self._hub_task = self._hub_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def enrol(self) -> str:
        offer = await offer_enrolment(self.hub_store, self.broker.url)
        enrolment = await enrol_at_hub(offer.code, self.store, self.band_id, self.broker.url)
        await offer.wait()
        return enrolment

    async def at_school(self, kind: type[Hub] = Hub) -> BandLink:
        """Paired, at school, enrolled at a running hub: the owner's band link through it, connected."""
        await self.pair_and_leave()
        self.start_hub(kind)
        await self.enrol()
        await self.open_tunnel()
        link = self.link()
        await asyncio.wait_for(link.connected.wait(), 30)
        return link

    async def open_tunnel(self) -> HubTunnel:
        hub = self.store.band_hub(self.band_id)
        assert hub is not None
        self.tunnel = HubTunnel(self.broker.url, hub[1])
        self._spawn(self.tunnel.run())
        await asyncio.wait_for(self.tunnel.online.wait(), 10)
        return self.tunnel

    def link(self, config: BleConfig | None = None) -> BandLink:
        """The owner's band link: through the hub, or with ``config`` (the phone's own radio)."""
        if config is None:
            assert self.tunnel is not None
            config = self.tunnel.config()

        async def on_press(_band: str, seq: int) -> None:
            self.pressed.append(seq)
            self.press_times.append(time.time())
            self.changed.set()

        async def on_felt(_band: str, token: int) -> None:
            self.felt.append(token)
            self.changed.set()

        link = BandLink(
            self.store,
            self.band_id,
            config,
            on_press=on_press,
            on_felt=on_felt,
            on_state=lambda _s: self.changed.set(),
            scan_timeout=3.0,
            max_backoff=2.0,
        )
        self.links.append((link, self._spawn(link.run())))
        return link

    async def stop_link(self, link: BandLink) -> None:
        for held, task in self.links:
            if held is link:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def motor_runs(self) -> int:
        return len(await self.control.motor_starts(self.band.address))

    async def close(self) -> None:
        await self.stop_hub()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.store.close()
        self.hub_store.close()


@contextlib.asynccontextmanager
async def school(tmp: Path, broker: TestBroker) -> AsyncIterator[School]:
    server = Airspace()
    air = await server.start()
    band = BandProcess(air, tmp / "band")
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(server.close)
        stack.push_async_callback(band.kill)
        await band.start()
        await stack.enter_async_context(broker)
        control = await stack.enter_async_context(AirspaceControl(air))
        s = School(tmp, air, band, control, broker)
        stack.push_async_callback(s.close)
        yield s
