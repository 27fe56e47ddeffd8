"""Helpers shared by the airspace tests (no tests here): an airspace in a background thread, bounded waits."""

from __future__ import annotations

import asyncio
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SRC_PATH = os.pathsep.join(str(ROOT / p) for p in ("firmware", "protocol"))
for _p in reversed(SRC_PATH.split(os.pathsep)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from hugsim.airspace import Advert, Airspace, AirspaceCentral  # noqa: E402

WAIT_S = 5.0


def run(coro: Any, timeout: float = 15.0) -> Any:
    """Run a coroutine to completion with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextmanager
def airspace_thread() -> Iterator[str]:
    """An Airspace on its own loop in a daemon thread; yields its address."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        server = Airspace()
        box["addr"] = await server.start()
        box["loop"] = asyncio.get_running_loop()
        box["stop"] = asyncio.Event()
        box["server"] = server
        ready.set()
        await box["stop"].wait()
        await server.close()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(WAIT_S), "airspace did not start"
    try:
        yield box["addr"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(WAIT_S)


class EventLog:
    """Thread-safe record of (name, data) events from a PeripheralRadio or firmware IRQ handler."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()
        self.all: list = []

    def __call__(self, name: Any, data: Any) -> None:
        self.all.append((name, data))
        self.q.put((name, data))

    def take(self, name: Any, timeout: float = WAIT_S) -> Any:
        """Block until the next event called ``name`` (skipping others); return its data."""
        while True:
            got, data = self.q.get(timeout=timeout)
            if got == name:
                return data

    async def atake(self, name: Any, timeout: float = WAIT_S) -> Any:
        return await asyncio.to_thread(self.take, name, timeout)


async def wait_advert(
    central: AirspaceCentral,
    address: str,
    pred: Callable[[Advert], bool] = lambda a: True,
    *,
    active: bool = True,
) -> Advert:
    """Scan until an advert from ``address`` satisfies ``pred`` (bounded)."""
    fut: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_adv(a: Advert) -> None:
        if a.address == address and pred(a) and not fut.done():
            fut.set_result(a)

    await central.start_scan(on_adv, active=active)
    try:
        return await asyncio.wait_for(fut, WAIT_S)
    finally:
        await central.stop_scan()
