"""Run virtual bands as separate processes.

Used by `hugbutton band sim`, the demo, the tests and the benchmarks. Each band is its own process
running the real firmware, so it can be killed and restarted alone: by default the MicroPython unix
port loading the build's .mpy files at the board's heap cap (:mod:`hugsim.band.mpband`);
``runtime="cpython"`` (or ``HUGSIM_BAND_RUNTIME=cpython``) runs the older CPython imitation
(``python -m hugsim.band.runner``) instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hugsim.band.mpband import MicroPythonMissing, Supervisor

READY_TIMEOUT_S = 20.0
RUNTIMES = ("micropython", "cpython")


def default_runtime() -> str:
    """The band runtime: real MicroPython, unless ``HUGSIM_BAND_RUNTIME`` says otherwise."""
    return os.environ.get("HUGSIM_BAND_RUNTIME") or "micropython"


class SimProcessError(RuntimeError):
    """A simulated process did not start."""


async def _first_line(proc: asyncio.subprocess.Process, what: str) -> str:
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        raise SimProcessError(f"{what} did not start within {READY_TIMEOUT_S:.0f} s") from None
    if not line:
        err = b""
        if proc.stderr is not None:
            err = await proc.stderr.read()
        raise SimProcessError(f"{what} exited at start: {err.decode(errors='replace').strip()[-2000:]}")
    return line.decode().strip()


class BandProcess:
    """One virtual band: the real firmware on the sim port, in its own process."""

    def __init__(
        self,
        airspace: str,
        state_dir: Path,
        board: str = "xiao_esp32c3",
        address: str | None = None,
        print_outputs: bool = False,
        runtime: str | None = None,
        heap_kb: int | None = None,
        on_output: Callable[[dict[str, Any]], None] | None = None,
        flash_files: dict[str, str] | None = None,
    ) -> None:
        self.flash_files = flash_files
        self.runtime = runtime or default_runtime()
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {self.runtime!r}")
        self.heap_kb = heap_kb
        self.on_output = on_output
        self.supervisor: Supervisor | None = None
        self.airspace = airspace
        self.state_dir = Path(state_dir)
        self.board = board
        self.address = address or ""
        self.print_outputs = print_outputs
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}
        self._drains: list[asyncio.Task[None]] = []

    @property
    def heap_peak(self) -> int:
        """The band's live-heap high-water mark in bytes (MicroPython runtime; 0 otherwise)."""
        return self.supervisor.heap_peak if self.supervisor is not None else 0

    async def start(self) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.runtime == "micropython":
            return await self._start_micropython()
        args = [
            "-m",
            "hugsim.band.runner",
            "--board",
            self.board,
            "--state",
            str(self.state_dir),
            "--airspace",
            self.airspace,
        ]
        if self.address:
            args += ["--address", self.address]
        if self.print_outputs or self.on_output is not None:
            args.append("--print-outputs")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        while True:
            line = await _first_line(self.proc, f"virtual band in {self.state_dir}")
            if line.startswith("{") and '"ready"' in line:
                self.info = json.loads(line)
                self.address = str(self.info["address"])
                self._drains = [
                    asyncio.ensure_future(_drain(stream, self.state_dir / "band.log", self.on_output))
                    for stream in (self.proc.stdout, self.proc.stderr)
                    if stream is not None
                ]
                return self.address

    async def _start_micropython(self) -> str:
        if not self.address:
            from hugsim.band.runner import default_address

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
        try:
            self.info = await self.supervisor.start()
        except MicroPythonMissing as exc:
            raise SimProcessError(str(exc)) from None
        self.address = str(self.info["address"])
        return self.address

    async def kill(self) -> None:
        """Pull the battery: SIGKILL, no chance to save anything."""
        if self.supervisor is not None:
            await self.supervisor.stop(signal.SIGKILL)
        await _end(self.proc, signal.SIGKILL)

    async def stop(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop(signal.SIGTERM)
        await _end(self.proc, signal.SIGTERM)

    async def restart(self) -> str:
        await self.kill()
        return await self.start()


async def _drain(
    stream: asyncio.StreamReader, log: Path, on_output: Callable[[dict[str, Any]], None] | None
) -> None:
    """Keep reading what a band prints (a full pipe would stall it), appending it to its log; output
    lines also go to ``on_output``."""
    while line := await stream.readline():
        _append(log, line)
        if on_output is not None and line.startswith(b"{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "kind" in event:
                on_output(event)  # pyright: ignore[reportUnknownArgumentType]


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


async def _end(proc: asyncio.subprocess.Process | None, sig: int) -> None:
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(sig)
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


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
