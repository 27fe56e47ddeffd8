"""Control client (asyncio): the hands and eyes of tests, the demo and the UI.

    async with AirspaceControl(addr) as ctl:
        await ctl.wait_node("C0:FF:EE:00:00:01")
        await ctl.hold("C0:FF:EE:00:00:01", 800)               # squeeze the heart for 0.8 s
        entry = await ctl.wait_output("C0:FF:EE:00:00:02", "motor", lambda v: v > 0)
        sniffed = await ctl.recording()                          # every byte on the air since the start

Bands are named by their identity address (the one they joined with); ``air_address`` gives the
address a band is on the air with now, which a band with a private address changes.

Times are the airspace's monotonic clock in ms (``now()``), shared by every process.
"""

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple, cast

from . import wire
from ._client import _AsyncSession


class TimelineEntry(NamedTuple):
    t_ms: float  # airspace time when the airspace heard of the output
    kind: str  # "motor", "led", ...
    value: object  # "motor": intensity 0.0..1.0; "led": 0/1, or (r, g, b) for a NeoPixel; ...


def _entry(raw: list[Any]) -> TimelineEntry:
    value: Any = raw[2]
    if isinstance(value, list):
        value = tuple(cast("list[Any]", value))
    return TimelineEntry(raw[0], raw[1], value)


class AirspaceControl(_AsyncSession):
    def __init__(self, airspace_addr: str) -> None:
        super().__init__(airspace_addr)
        self._watching = False
        self._changed = asyncio.Event()
        self._live: set[str] = set()
        self._outputs: dict[str, list[TimelineEntry]] = {}

    async def start(self) -> "AirspaceControl":
        await self._open({"role": "control"})
        return self

    async def __aenter__(self) -> "AirspaceControl":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----- physics -----

    async def now(self) -> float:
        return (await self._request({"op": "now"}))["t_ms"]

    async def input(self, address: str, name: str, value: Any = None) -> float:
        """Deliver a raw input to a band's ``on_input(name, value)``; returns the airspace time."""
        return (await self._request({"op": "input", "address": address, "name": name, "value": value}))[
            "t_ms"
        ]

    async def press(self, address: str) -> float:
        return await self.input(address, "button", 1)

    async def release(self, address: str) -> float:
        return await self.input(address, "button", 0)

    async def hold(self, address: str, ms: float) -> tuple[float, float]:
        """Press, keep pressed for ``ms`` (timed by the airspace), release. -> (t_press, t_release)."""
        reply = await self._request({"op": "hold", "address": address, "ms": ms}, timeout=ms / 1000.0 + 10.0)
        return reply["t_press"], reply["t_release"]

    async def touch(self, address: str, value: int) -> float:
        return await self.input(address, "touch", value)

    async def timeline(self, address: str) -> list[TimelineEntry]:
        reply = await self._request({"op": "timeline", "address": address})
        return [_entry(e) for e in reply["entries"]]

    async def motor_starts(self, address: str) -> list[float]:
        """Airspace times (ms) at which a band's motor started from rest: one per buzz pulse."""
        starts: list[float] = []
        on = False
        for entry in await self.timeline(address):
            if entry.kind == "motor":
                now_on = float(entry.value) > 0  # pyright: ignore[reportArgumentType]
                if now_on and not on:
                    starts.append(entry.t_ms)
                on = now_on
        return starts

    async def clear_timeline(self, address: str) -> None:
        await self._request({"op": "clear_timeline", "address": address})
        self._outputs.pop(wire.normalize_address(address), None)

    # ----- radio world -----

    async def set_rssi(self, address: str, rssi: int | None, *, central: str | None = None) -> None:
        """RSSI of ``address`` as heard by every central (or only by the central named ``central``).
        None or below -100 dBm: out of range (invisible; its links drop)."""
        await self._request({"op": "set_rssi", "address": address, "rssi": rssi, "central": central})

    async def out_of_range(self, address: str, *, central: str | None = None) -> None:
        await self.set_rssi(address, None, central=central)

    async def in_range(
        self, address: str, rssi: int = wire.DEFAULT_RSSI, *, central: str | None = None
    ) -> None:
        await self.set_rssi(address, rssi, central=central)

    async def drop_link(self, address: str, *, central: str | None = None) -> int:
        """Drop ``address``'s links now (supervision timeout on both sides). -> number dropped."""
        return (await self._request({"op": "drop_link", "address": address, "central": central}))["dropped"]

    async def drop_after(self, address: str, op: str = "notify", n: int = 1, when: str = "before") -> None:
        """Drop ``address``'s link around the ``n``-th next ``op``: "notify" (notifications and
        indications it sends) or "write" (writes centrals make to its characteristics/descriptors,
        CCCD writes excluded). ``when="before"``: that message is lost; ``"after"``: it arrives, then
        the link drops (for a write with response, before the response reaches the central)."""
        await self._request({"op": "drop_after", "address": address, "kind": op, "n": n, "when": when})

    async def lose_irq(self, address: str, event: str = "disconnect", n: int = 1) -> None:
        """The band's BLE stack loses the next ``n`` ``event`` IRQs ("connect", "disconnect" or
        "write") on their way to the firmware, as a full IRQ ring does; its connection table stays
        right (``gap_disconnect`` and ``gatts_notify`` see the truth)."""
        await self._request({"op": "lose_irq", "address": address, "event": event, "n": n})

    async def notify_busy(self, address: str, n: int = 1, *, uuid: str | None = None) -> None:
        """The band's controller has no buffer for its next ``n`` notifications (of the characteristic
        ``uuid``, if given): ``gatts_notify`` raises ``OSError(ENOMEM)``, nothing goes out, the link
        stays up."""
        await self._request({"op": "notify_busy", "address": address, "n": n, "uuid": uuid})

    async def set_link_limit(self, limit: int, *, central: str | None = None) -> None:
        """How many links every central (or the one named ``central``) may hold at once (default
        ``wire.DEFAULT_LINK_LIMIT``); links already up stay up."""
        await self._request({"op": "set_link_limit", "limit": limit, "central": central})

    async def set_latency(self, ms: float) -> None:
        """Delay every message the airspace delivers to a band or a phone by ``ms``."""
        await self._request({"op": "set_latency", "ms": ms})

    async def list_nodes(self) -> list[dict[str, Any]]:
        return (await self._request({"op": "list_nodes"}))["nodes"]

    async def air_address(self, address: str) -> str:
        """The address the band ``address`` (its identity) is on the air with now."""
        address = wire.normalize_address(address)
        for node in await self.list_nodes():
            if node["address"] == address:
                return node["air_address"]
        raise wire.NotFoundError("no band %s on the air" % address)

    async def wait_advertising(self, address: str, timeout: float = 10.0) -> str:
        """Wait until the band ``address`` advertises; returns the address it advertises from."""
        address = wire.normalize_address(address)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            node = next((n for n in await self.list_nodes() if n["address"] == address), None)
            if node is not None and node["advertising"]:
                return node["air_address"]
            if loop.time() > deadline:
                raise wire.AirspaceTimeoutError(
                    "band %s did not advertise within %.1f s" % (address, timeout)
                )
            await asyncio.sleep(0.02)

    # ----- the passive recorder -----

    async def recording(self, since_ms: float = 0.0, *, truth: bool = False) -> list[dict[str, Any]]:
        """What a sniffer captured at or after ``since_ms`` (see ``recorder.py``); ``truth`` adds each
        entry's ``node`` (the band's identity), which no sniffer has."""
        reply = await self._request({"op": "recording", "since_ms": since_ms, "truth": truth}, timeout=60.0)
        return reply["entries"]

    async def clear_recording(self) -> None:
        await self._request({"op": "clear_recording"})

    # ----- waiting on the world (event-driven, bounded) -----

    async def watch(self) -> None:
        """Start receiving node up/down and output events (done automatically by the wait_* helpers)."""
        if self._watching:
            return
        reply = await self._request({"op": "watch"})
        self._watching = True
        self._live.update(reply["nodes"])

    def _on_event(self, msg: dict[str, Any]) -> None:
        ev = msg.get("ev")
        if ev == "node":
            (self._live.add if msg["up"] else self._live.discard)(msg["address"])
        elif ev == "output":
            self._remember(msg["address"], _entry(msg["entry"]))
        else:
            return
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        await self.watch()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result is not None and result is not False:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0 or self.closed:
                raise wire.AirspaceTimeoutError("timed out after %.1f s waiting for %s" % (timeout, what))
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_node(self, address: str, timeout: float = 10.0, *, up: bool = True) -> None:
        """Wait until a band with ``address`` is on the air (or, with ``up=False``, gone)."""
        address = wire.normalize_address(address)
        await self._wait(lambda: (address in self._live) == up, timeout, "node %s up=%s" % (address, up))

    async def wait_output(
        self,
        address: str,
        kind: str | None = None,
        match: Callable[[Any], bool] | None = None,
        *,
        since_ms: float | None = None,
        timeout: float = 10.0,
    ) -> TimelineEntry:
        """Wait for an output of ``kind`` whose value satisfies ``match(value)`` at or after
        airspace time ``since_ms`` (default: now). Returns the first such timeline entry."""
        address = wire.normalize_address(address)
        await self.watch()
        if since_ms is None:
            since_ms = await self.now()
        try:
            for e in await self.timeline(address):
                self._remember(address, e)
        except wire.NotFoundError:
            pass  # never on the air yet: its outputs will arrive as events

        def find() -> TimelineEntry | None:
            for e in self._outputs.get(address, []):
                if (
                    e.t_ms >= since_ms
                    and (kind is None or e.kind == kind)
                    and (match is None or match(e.value))
                ):
                    return e
            return None

        return await self._wait(find, timeout, "%s output %s" % (address, kind))

    def _remember(self, address: str, entry: TimelineEntry) -> None:
        known = self._outputs.setdefault(address, [])
        if entry not in known:
            known.append(entry)
            known.sort(key=lambda e: e.t_ms)
