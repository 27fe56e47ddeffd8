"""Run virtual bands as separate processes.

Used by `hugbutton band sim`, the demo, the tests and the benchmarks. Each band is its own process,
the MicroPython unix port running the real firmware from the build's .mpy files at the board's heap
cap (:mod:`hugsim.band.mpband`), so it can be killed and restarted alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hugsim.band.mpband import SimProcessError, Supervisor

__all__ = ["BandProcess", "SimProcessError", "default_address", "main_from_cli"]


def default_address(state_dir: Path) -> str:
    """A stable address for a state directory: C0:FF:EE + 3 bytes of its path's hash."""
    h = hashlib.sha256(str(Path(state_dir).resolve()).encode()).digest()
    return "C0:FF:EE:%02X:%02X:%02X" % (h[0], h[1], h[2])


class BandProcess:
    """One virtual band: the real firmware on real MicroPython, in its own process (restarted by its
    supervisor on a watchdog reset, ``machine.reset()`` or a wake from deep sleep).

    ``heap_kb``: the whole ``-X heapsize`` in KB, board modules included (default: the board's
    ``heap_kb`` + ``mpband.SIM_HEAP_KB``). ``on_output(event)`` gets every output (motor, led, boot,
    ...) as a dict. ``flash_files`` ({path: text}) are written to the flash after the build, e.g. a
    main.py of a test's own."""

    runtime = "micropython"

    def __init__(
        self,
        airspace: str,
        state_dir: Path,
        board: str = "xiao_esp32c3",
        address: str | None = None,
        print_outputs: bool = False,
        heap_kb: int | None = None,
        on_output: Callable[[dict[str, Any]], None] | None = None,
        flash_files: dict[str, str] | None = None,
    ) -> None:
        self.airspace = airspace
        self.state_dir = Path(state_dir)
        self.board = board
        self.address = address or ""
        self.print_outputs = print_outputs
        self.heap_kb = heap_kb
        self.on_output = on_output
        self.flash_files = flash_files
        self.supervisor: Supervisor | None = None
        self.info: dict[str, Any] = {}

    @property
    def heap_peak(self) -> int:
        """The band's live-heap high-water mark in bytes (0 before it ran)."""
        return self.supervisor.heap_peak if self.supervisor is not None else 0

    async def start(self) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.address:
            self.address = default_address(self.state_dir)
        self.supervisor = Supervisor(
            self.airspace,
            self.state_dir,
            self.board,
            self.address.upper(),
            heap_kb=self.heap_kb,
            print_outputs=self.print_outputs or self.on_output is not None,
            on_output=self.on_output,
            flash_files=self.flash_files,
        )
        self.info = await self.supervisor.start()  # SimProcessError if it cannot (no MicroPython, ...)
        self.address = str(self.info["address"])
        return self.address

    async def kill(self) -> None:
        """Pull the battery: SIGKILL, no chance to save anything."""
        if self.supervisor is not None:
            await self.supervisor.stop(signal.SIGKILL)

    async def stop(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop(signal.SIGTERM)

    async def restart(self) -> str:
        await self.kill()
        return await self.start()


def default_state_dir(address: str | None) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hugbutton" / "bands"
    return base / (address or "default").replace(":", "")


async def _sim(args: Any) -> int:
    from hugsim.airspace import Airspace, AirspaceControl

    server = None
    airspace = args.airspace
    if not airspace:
        server = Airspace()
        airspace = await server.start()
    state = Path(args.state) if args.state else default_state_dir(args.address)

    def show(event: dict[str, Any]) -> None:
        if event.get("kind") in ("motor", "led", "boot", "crash", "power"):
            print(f"  {event['t_ms']:>9} ms  {event['kind']:<6} {event['value']}", flush=True)

    band = BandProcess(airspace, state, board=args.board, address=args.address, on_output=show)
    address = await band.start()
    print(f"virtual band {address} ({args.board}, {band.runtime}) is advertising in the airspace {airspace}")
    print("  (from private addresses that change; the address above is its identity for tools and tests)")
    print(f"  flash: {state}")
    print("  type Enter to tap the heart, 'hold SECONDS' to hold it (5 = pairing window), 'quit' to stop")
    loop = asyncio.get_running_loop()
    try:
        async with AirspaceControl(airspace) as control:
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                words = line.split()
                if not line or words[:1] == ["quit"]:
                    break
                if not words:
                    await control.hold(address, 80)
                elif words[0] == "hold" and len(words) == 2:
                    try:
                        seconds = float(words[1])
                    except ValueError:
                        print("  hold takes seconds, e.g. hold 5")
                        continue
                    await control.hold(address, seconds * 1000)
                else:
                    print("  commands: Enter (tap), hold SECONDS, quit")
    finally:
        await band.stop()
        if server is not None:
            await server.close()
    return 0


def main_from_cli(args: Any) -> int:
    try:
        return asyncio.run(_sim(args))
    except KeyboardInterrupt:
        return 0
    except SimProcessError as exc:
        print(f"hugbutton: {exc}", file=sys.stderr)
        return 1
