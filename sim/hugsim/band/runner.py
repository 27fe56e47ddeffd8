"""The virtual band runner: real, unmodified firmware on the sim port, one band per process.

    python -m hugsim.band.runner --board xiao_esp32c3 --state /tmp/band1 --airspace 127.0.0.1:7000 \\
        [--address C0:FF:EE:00:00:01] [--name NAME] [--entry hugband.main:main] [--path DIR] \\
        [--control stdin] [--print-outputs] [--on-exit halt|reboot] [--battery-v 3.9] [--ticks-start MS]

or in-process (tests)::

    with run_band(board, state_dir, entry="fake_firmware.blinky:main") as band:
        band.world.press(); band.world.wait_for("motor", lambda v: v > 0)

What it does:

- builds the :class:`~hugsim.band.world.World` for the board (``--board`` is a name under
  ``firmware/hugband/boards/`` or a path to a JSON file, read by ``hugband.board``);
- makes ``--state DIR`` the band's flash: the firmware runs with that directory as its working
  directory, so ``open("outbox.bin", "wb")`` persists across simulated reboots and process restarts
  (sim-private files live in ``DIR/.hugsim/``);
- puts ``sim/hugsim/band/port`` first on ``sys.path`` (``machine``, ``bluetooth``, ``micropython``,
  ``neopixel``, ``esp32``), installs the ``time``/``asyncio``/``gc``/``sys`` shims
  (:mod:`hugsim.band.shims`);
- connects the radio (``hugsim.airspace.PeripheralRadio``) when ``--airspace`` is given, as
  ``runtime.radio``: its ``on_input(name, value)`` feeds :meth:`World.apply_input`, and every World
  output is forwarded with ``radio.report_output(kind, value, t_ms)``;
- runs the entry ``module:function`` in a dedicated *firmware thread* (a coroutine it returns is run
  with ``asyncio.run``), and restarts it in the same process with fresh module state (``hugband``,
  ``hugproto``, the entry's package and the port modules are purged from ``sys.modules``) after
  ``machine.reset()`` (SOFT_RESET), a watchdog expiry (WDT_RESET), ``machine.deepsleep()``
  (DEEPSLEEP_RESET after a wake source or the timer) or :meth:`Band.power_cycle` (PWRON_RESET).
  If the entry returns or raises, the band halts as a real one would at the REPL (``--on-exit
  reboot`` restarts it instead, as a panic reset would).

Reboots from another thread (watchdog, a hard IRQ, ``power_cycle``) interrupt the firmware thread by
raising :class:`hugsim.band.runtime.Reboot` in it (``PyThreadState_SetAsyncExc``) and waking its event loop
or sleep.
"""

import argparse
import contextlib
import ctypes
import hashlib
import importlib
import inspect
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from hugsim.band import runtime, shims
from hugsim.band.world import DEEPSLEEP_RESET, PWRON_RESET, SOFT_RESET, WDT_RESET, World

PORT_DIR = Path(__file__).resolve().parent / "port"
DEFAULT_ENTRY = "hugband.main:main"

_PURGE_PACKAGES = ("hugband", "hugproto")


def load_board(board) -> dict:
    """A board dict from a name (a firmware board file, checked by ``hugband.board.load``), a JSON
    path or a dict. A path or a dict may describe just the physics a test needs (a partial board for
    a fake firmware): it is read with ``hugband.board.read`` and not checked."""
    from hugband import board as boards  # the firmware's own loader (purged and re-imported at boot)

    if isinstance(board, dict):
        return dict(board)
    p = Path(str(board))
    if p.suffix == ".json" and p.exists():
        data = boards.read(str(p), p.stem)
        data.setdefault("name", p.stem)
        return data
    return boards.load(str(board))


def default_address(state_dir) -> str:
    """A stable address for a state directory: C0:FF:EE + 3 bytes of its path's hash."""
    h = hashlib.sha256(str(Path(state_dir).resolve()).encode()).digest()
    return "C0:FF:EE:%02X:%02X:%02X" % (h[0], h[1], h[2])


def _async_raise(thread_id, exc_type) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class Band:
    """One virtual band. Only one may be active per process (the port modules are process-wide)."""

    def __init__(
        self,
        board,
        state_dir,
        *,
        entry: str = DEFAULT_ENTRY,
        address=None,
        name=None,
        radio=None,
        airspace=None,
        ticks_start_ms: int = 0,
        on_exit: str = "halt",
        battery_v: float = 3.9,
        extra_paths=(),
        world=None,
        flash_board: bool = True,
    ) -> None:
        self.board = load_board(board)
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if flash_board:  # as `hugbutton band flash` does: the firmware reads board.json from flash
            text = json.dumps(self.board, indent=1)
            path = self.state_dir / "board.json"
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
        self.entry = entry
        self.address = (address or default_address(self.state_dir)).upper()
        self.name = name
        self.world = world or World(
            self.board, address=self.address, battery_v=battery_v, state_dir=str(self.state_dir)
        )
        self.world.name = name
        self.ticks_start_ms = int(ticks_start_ms)
        if on_exit not in ("halt", "reboot"):
            raise ValueError("on_exit must be 'halt' or 'reboot'")
        self.on_exit = on_exit
        self.extra_paths = [str(Path(p).resolve()) for p in extra_paths]
        self.radio = radio
        self.airspace = airspace
        self.boots = []  # [{"boot": n, "reset_cause": c, "wake_reason": w, "t_ms": t}]
        self.crashes = []  # exceptions that ended the entry
        self.reboot_event = threading.Event()
        self._lock = threading.Lock()
        self._pending = None
        self._fw_running = False
        self._fw_ident = None
        self._stop = threading.Event()
        self._thread = None
        self._wdt_thread = None
        self._wdt_timeout = None
        self._wdt_deadline = None
        self._boot_cond = threading.Condition()
        self._saved = None
        self._listener = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "Band":
        """Activate the process-wide sim state and boot the firmware in a background thread;
        returns once the first boot has begun."""
        self._activate()
        self._thread = threading.Thread(target=self._main, name="hugsim-firmware", daemon=True)
        self._wdt_thread = threading.Thread(target=self._watchdog, name="hugsim-wdt", daemon=True)
        self._thread.start()
        self._wdt_thread.start()
        self.wait_boot(1, timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Switch the band off (the firmware thread is interrupted) and restore the process."""
        if self._thread is not None:
            self._stop.set()
            self.request_reboot("stop", {})
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the firmware thread did not stop within %.1f s" % timeout)
            self._thread = None
        if self._wdt_thread is not None:
            self._wdt_thread.join(timeout)
            self._wdt_thread = None
        self.world.emit("power", "off")
        self._deactivate()

    def __enter__(self) -> "Band":
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def power_cycle(self) -> None:
        """Pull the battery and put it back: next boot is PWRON_RESET, RTC memory is lost."""
        self.request_reboot("power", {})

    def wait_boot(self, n: int, timeout: float = 10.0) -> dict:
        """Wait until the ``n``-th boot (1 = first) has begun; return its record."""
        deadline = time.monotonic() + timeout
        with self._boot_cond:
            while len(self.boots) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        "boot %d did not happen within %.1f s (boots: %r)" % (n, timeout, self.boots)
                    )
                self._boot_cond.wait(left)
            return self.boots[n - 1]

    # -- process-wide state ----------------------------------------------------------------------
    def _activate(self) -> None:
        if runtime.band is not None and runtime.band is not self:
            raise RuntimeError("another band is already running in this process")
        self._saved = {
            "cwd": os.getcwd(),
            "path": list(sys.path),
            "modules": {k: v for k, v in sys.modules.items() if self._purgeable(k, v)},
            "runtime": (runtime.world, runtime.radio, runtime.band),
        }
        for p in [str(PORT_DIR), *self.extra_paths[::-1]]:
            if p in sys.path:
                sys.path.remove(p)
            sys.path.insert(0, p)
        shims.install()
        runtime.world = self.world
        runtime.band = self
        if self.radio is None and self.airspace:
            self.radio = connect_radio(self.airspace, self.address, self.world, name=self.name)
        runtime.radio = self.radio
        if self.radio is not None and hasattr(self.radio, "report_output"):
            self._listener = _forwarder(self.radio)
            self.world.add_listener(self._listener)
        os.chdir(self.state_dir)

    def _deactivate(self) -> None:
        if self._saved is None:
            return
        if self._listener is not None:
            self.world.remove_listener(self._listener)
            self._listener = None
        if self.radio is not None and self.airspace and hasattr(self.radio, "close"):
            try:
                self.radio.close()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
        self._purge()
        sys.modules.update(self._saved["modules"])
        sys.path[:] = self._saved["path"]
        os.chdir(self._saved["cwd"])
        runtime.world, runtime.radio, runtime.band = self._saved["runtime"]
        runtime.firmware_thread_id = None
        runtime.scheduler.reset()
        shims.uninstall()
        self._saved = None

    def _purgeable(self, name: str, mod) -> bool:
        top = name.split(".")[0]
        entry_top = self.entry.split(":")[0].split(".")[0]
        if top in _PURGE_PACKAGES or top == entry_top:
            return True
        f = getattr(mod, "__file__", None)
        return bool(f) and Path(f).resolve().parent == PORT_DIR

    def _purge(self) -> None:
        for k in [k for k, v in list(sys.modules.items()) if self._purgeable(k, v)]:
            del sys.modules[k]
        importlib.invalidate_caches()

    # -- reboots -------------------------------------------------------------------------------
    def request_reboot(self, kind: str, info: dict) -> None:
        """End the current boot (any thread). ``kind``: soft, soft_reset, wdt, deepsleep, power, stop."""
        with self._lock:
            if self._pending is None or kind == "stop" or (kind == "power" and self._pending[0] != "stop"):
                self._pending = (kind, dict(info))
            self.reboot_event.set()
            if self._fw_running and self._fw_ident is not None and threading.get_ident() != self._fw_ident:
                _async_raise(self._fw_ident, runtime.Reboot)
        runtime.scheduler.poke()

    def reboot_pending(self) -> bool:
        return self.reboot_event.is_set()

    def wdt_arm(self, timeout_ms: int) -> None:
        with self._lock:
            self._wdt_timeout = timeout_ms
            self._wdt_deadline = time.monotonic() + timeout_ms / 1000.0

    def wdt_feed(self) -> None:
        with self._lock:
            if self._wdt_timeout is not None:
                self._wdt_deadline = time.monotonic() + self._wdt_timeout / 1000.0

    def _watchdog(self) -> None:
        while not self._stop.is_set():
            fire = False
            with self._lock:
                if self._wdt_deadline is not None and time.monotonic() >= self._wdt_deadline:
                    self._wdt_deadline = None
                    self._wdt_timeout = None
                    fire = True
            if fire:
                self.request_reboot("wdt", {})
            self._stop.wait(0.01)

    # -- the firmware thread ---------------------------------------------------------------------
    def _main(self) -> None:
        self._fw_ident = threading.get_ident()
        runtime.firmware_thread_id = self._fw_ident
        cause, wake = PWRON_RESET, 0
        try:
            while True:
                self._begin_boot(cause, wake)
                kind, info = self._run_entry()
                if kind in ("exit", "crash"):
                    if self.on_exit == "reboot" and not self._stop.is_set():
                        kind = "soft"
                    else:
                        self.world.emit("power", "halted")
                        self.reboot_event.wait()
                        kind, info = self._take_pending()
                if kind == "deepsleep":
                    kind, wake = self._deep_sleep(info.get("ms") or 0)
                    cause = DEEPSLEEP_RESET
                    if kind == "deepsleep":
                        continue
                if kind == "stop":
                    return
                if kind == "soft":
                    cause, wake = SOFT_RESET, 0
                elif kind == "wdt":
                    cause, wake = WDT_RESET, 0
                elif kind == "power":
                    cause, wake = PWRON_RESET, 0
                    self.world.rtc_memory = b""
                # "soft_reset" (interpreter restart) keeps cause and wake
        finally:
            self._end_boot()
            runtime.firmware_thread_id = None

    def _take_pending(self):
        with self._lock:
            pending = self._pending or ("soft", {})
            self._pending = None
            self.reboot_event.clear()
        return pending

    def _deep_sleep(self, ms: int):
        """Wait for a wake source; returns ("deepsleep", wake_reason), or (kind, 0) if a power
        cycle / stop came first."""
        with self._lock:  # the task watchdog does not run in deep sleep
            self._wdt_deadline = None
            self._wdt_timeout = None
        self.world.emit("power", "deepsleep")
        if self.radio is not None and hasattr(self.radio, "reset"):
            self._radio_reset()
        wake = self.world.wait_wake(ms / 1000.0 if ms else None, stop_event=self.reboot_event)
        if self.reboot_event.is_set():
            kind, _info = self._take_pending()
            return kind, 0
        return "deepsleep", wake

    def _radio_reset(self) -> None:
        try:
            self.radio.reset()
        except Exception as exc:  # noqa: BLE001
            print("hugsim: radio reset failed: %r" % (exc,), file=sys.stderr)

    def _begin_boot(self, cause: int, wake: int) -> None:
        self._end_boot()
        self._purge()
        runtime.scheduler.reset()
        self.world.reset_pins()
        self.world.cpu_hz = 160_000_000
        with self._lock:
            self._wdt_deadline = None
            self._wdt_timeout = None
            self._pending = None
            self.reboot_event.clear()
        runtime.reset_cause = cause
        runtime.wake_reason = wake
        runtime.ticks_start_ms = self.ticks_start_ms
        runtime.boot_monotonic = time.monotonic()
        if self.radio is not None and hasattr(self.radio, "reset") and self.boots:
            self._radio_reset()
        record = {
            "boot": len(self.boots) + 1,
            "reset_cause": cause,
            "wake_reason": wake,
            "t_ms": self.world.now_ms(),
        }
        self.world.emit("power", "active")
        self.world.emit("cpu_hz", 160_000_000)
        self.world.emit("boot", dict(record))
        with self._boot_cond:
            self.boots.append(record)
            self._boot_cond.notify_all()

    def _end_boot(self) -> None:
        m = sys.modules.get("machine")
        if m is not None and hasattr(m, "_stop_timers"):
            m._stop_timers()

    def _run_entry(self):
        outcome = ("exit", {})
        try:
            try:
                with self._lock:
                    if self._pending is not None:
                        raise runtime.Reboot("pending")
                    self._fw_running = True
                self._probe_plays()
                mod_name, _, fn_name = self.entry.partition(":")
                fn = getattr(importlib.import_module(mod_name), fn_name or "main")
                result = fn()
                if inspect.iscoroutine(result):
                    import asyncio

                    asyncio.run(result)
            except runtime.Reboot:
                outcome = ("reboot", {})
            except BaseException as exc:  # noqa: BLE001 - the band catches everything
                if self.reboot_event.is_set():
                    outcome = ("reboot", {})
                else:
                    self.crashes.append(exc)
                    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
                    self.world.emit("crash", "%s: %s" % (type(exc).__name__, exc))
                    outcome = ("crash", {"exc": exc})
            finally:
                self._quiesce()
        except runtime.Reboot:  # an interrupt that landed in the finally block above
            self._quiesce()
            outcome = ("reboot", {})
        if outcome[0] == "reboot":
            return self._take_pending()
        return outcome

    def _probe_plays(self) -> None:
        """A logic analyser on the haptic player: every pattern that starts playing (not merely
        queued) is recorded as a ``("play", token)`` output, so a test can count buzzes per Play
        token across reboots."""
        try:
            player = importlib.import_module("hugband.haptics").Player
        except ImportError:
            return  # another entry point without the band's haptics
        if getattr(player.poll, "probed", False):
            return
        poll = player.poll
        world = self.world

        def probed_poll(p, now_ms):
            duty = poll(p, now_ms)
            token = p.playing_token
            if token != getattr(p, "probe_last", -1):
                p.probe_last = token
                if token >= 0:
                    world.emit("play", token)
            return duty

        probed_poll.probed = True
        player.poll = probed_poll

    def _quiesce(self) -> None:
        """Stop async interrupts from reaching the runner's own code."""
        while True:
            try:
                with self._lock:
                    self._fw_running = False
                _async_raise(self._fw_ident, None)
                return
            except runtime.Reboot:
                continue


def _forwarder(radio):
    def forward(kind, value, t_ms):
        radio.report_output(kind, value, t_ms)

    return forward


def connect_radio(airspace: str, address: str, world: World, name=None):
    """The band's radio on the airspace: presses and touches arriving from the airspace
    (``on_input(name, value)``) go to ``World.apply_input``; hard-IRQ exclusion with
    ``machine.disable_irq()`` via ``runtime.irq_lock``."""
    from hugsim.airspace import PeripheralRadio

    def on_input(kind, value):
        try:
            world.apply_input(kind, value)
        except ValueError as exc:
            print("hugsim: ignored input %r=%r: %s" % (kind, value, exc), file=sys.stderr)

    return PeripheralRadio(airspace, address, on_input=on_input, irq_lock=runtime.irq_lock)


# -- in-process use --------------------------------------------------------------------------------
def run_band(board, state_dir, **kwargs) -> Band:
    """Start a band in this process and return it (use as a context manager to stop it)."""
    return Band(board, state_dir, **kwargs).start()


@contextlib.contextmanager
def sim_port(board=None, state_dir=None, **kwargs):
    """Make the *calling thread* a band's firmware thread without running an entry: the port
    modules import (fresh), the shims are on, the cwd is the state dir. For unit tests of firmware
    pieces and of the port itself. Yields the Band (``band.world`` is its World); no watchdog thread
    runs, and ``machine.reset()``/``deepsleep()`` just raise ``runtime.Reboot``."""
    import tempfile

    tmp = None
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="hugsim-")
        state_dir = tmp.name
    band = Band(board if board is not None else {}, state_dir, **kwargs)
    band._activate()
    band._fw_ident = threading.get_ident()
    runtime.firmware_thread_id = band._fw_ident
    try:
        band._begin_boot(PWRON_RESET, 0)
        yield band
    finally:
        band._end_boot()
        runtime.firmware_thread_id = None
        band._deactivate()
        if tmp is not None:
            tmp.cleanup()


# -- CLI -------------------------------------------------------------------------------------------
_CONTROL_HELP = """control lines (stdin): press [MS] | release | button 0|1 | touch 0|1 | battery V |
pin N 0|1|none | reset (power cycle) | quit"""


def _control_loop(band: Band, stream, done: threading.Event) -> None:
    w = band.world
    for line in stream:
        parts = line.split()
        if not parts:
            continue
        cmd, args = parts[0].lower(), parts[1:]
        try:
            if cmd == "press" and args:
                w.press_for(int(args[0]))
            elif cmd == "press":
                w.press()
            elif cmd == "release":
                w.release()
            elif cmd == "button":
                w.set_button(args[0] not in ("0", "false"))
            elif cmd == "touch":
                w.set_touch(args[0] not in ("0", "false"))
            elif cmd == "battery":
                w.battery_v = float(args[0])
            elif cmd == "pin":
                w.drive(int(args[0]), None if args[1].lower() == "none" else int(args[1]))
            elif cmd == "reset":
                band.power_cycle()
            elif cmd == "quit":
                break
            else:
                print(json.dumps({"error": "unknown command", "line": line.strip()}), flush=True)
        except (ValueError, IndexError) as exc:
            print(json.dumps({"error": str(exc), "line": line.strip()}), flush=True)
    done.set()


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hugsim.band.runner", description="Run one virtual band.", epilog=_CONTROL_HELP
    )
    ap.add_argument(
        "--board", required=True, help="board name (firmware/hugband/boards/NAME.json) or JSON path"
    )
    ap.add_argument("--state", required=True, help="state directory: the band's flash")
    ap.add_argument("--airspace", help="HOST:PORT of the airspace (omit: no radio)")
    ap.add_argument("--address", help="BLE address (default: derived from --state)")
    ap.add_argument("--name", help="a label for this band")
    ap.add_argument("--entry", default=DEFAULT_ENTRY, help="firmware entry module:function")
    ap.add_argument("--path", action="append", default=[], help="extra sys.path entry (repeatable)")
    ap.add_argument(
        "--control", choices=["none", "stdin"], default="none", help="read control lines from stdin"
    )
    ap.add_argument("--print-outputs", action="store_true", help="print every output as a JSON line")
    ap.add_argument("--on-exit", choices=["halt", "reboot"], default="halt")
    ap.add_argument("--battery-v", type=float, default=3.9)
    ap.add_argument("--ticks-start", type=int, default=0, help="ticks_ms() at boot (test wrap-around)")
    args = ap.parse_args(argv)

    band = Band(
        args.board,
        args.state,
        entry=args.entry,
        address=args.address,
        name=args.name,
        airspace=args.airspace,
        ticks_start_ms=args.ticks_start,
        on_exit=args.on_exit,
        battery_v=args.battery_v,
        extra_paths=args.path,
    )
    out_lock = threading.Lock()
    if args.print_outputs:

        def show(kind, value, t_ms):
            with out_lock:
                print(json.dumps({"t_ms": t_ms, "kind": kind, "value": _jsonable(value)}), flush=True)

        band.world.add_listener(show)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    band.start()
    with out_lock:
        print(
            json.dumps(
                {
                    "ready": True,
                    "address": band.address,
                    "board": band.world.board.name,
                    "state": str(band.state_dir),
                    "pid": os.getpid(),
                }
            ),
            flush=True,
        )
    if args.control == "stdin":
        threading.Thread(target=_control_loop, args=(band, sys.stdin, done), daemon=True).start()
    while not done.wait(0.2):
        pass
    band.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
