"""Run bleak's own Linux BlueZ backend against the simulated BlueZ (``python -m hugsim.phone.bluez``).

    async with simulated_bluez(air_addr) as bluez:
        devices = await BleakScanner.discover(...)   # plain bleak, no backend argument

For the duration, DBUS_SYSTEM_BUS_ADDRESS points at the simulation's private dbus-daemon and a
``bluetoothctl`` stub (printing a recent version) is first on PATH, so nothing depends on the host's
BlueZ or system bus. Use one ``asyncio.run`` per test: bleak keeps one BlueZ manager per event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from testkit import require_tool

from hugsim.phone.bluez import write_bluetoothctl_stub

START_TIMEOUT_S = 20.0


@dataclass
class BlueZSim:
    """A running ``python -m hugsim.phone.bluez``."""

    bus_address: str
    proc: asyncio.subprocess.Process
    daemon_pids: list[int] = field(default_factory=list)  # its dbus-daemon(s), to check they end

    @property
    def pid(self) -> int:
        return self.proc.pid


def children_named(pid: int, name: str) -> list[int]:
    """Pids of the live child processes of ``pid`` whose command name is ``name`` (Linux /proc)."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(pid) and fields.get("Name", "").strip() == name:
            out.append(int(entry.name))
    return out


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        status = Path("/proc/%d/status" % pid).read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


async def start_bluez(air_addr: str, *args: str) -> BlueZSim:
    """Start ``python -m hugsim.phone.bluez`` and wait for its bus address (its one line of output)."""
    require_tool("dbus-daemon")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hugsim.phone.bluez",
        "--airspace",
        air_addr,
        *args,
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
    except TimeoutError:
        line = b""
    if not line.strip():
        await stop_bluez(proc)
        raise RuntimeError(
            "python -m hugsim.phone.bluez did not print its bus address (exit %s)" % proc.returncode
        )
    sim = BlueZSim(line.decode().strip(), proc)
    sim.daemon_pids = children_named(proc.pid, "dbus-daemon")
    return sim


async def stop_bluez(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> int:
    """Signal the simulation and wait for it (SIGKILL after 10 s); returns its exit code."""
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


@contextlib.asynccontextmanager
async def simulated_bluez(air_addr: str, *args: str) -> AsyncIterator[BlueZSim]:
    """The simulated BlueZ for ``air_addr`` as bleak's system bus, with a bluetoothctl stub on PATH.
    ``args`` go to ``python -m hugsim.phone.bluez`` (e.g. "--char-handles", "declaration")."""
    stub_dir = tempfile.mkdtemp(prefix="hug-bluetoothctl-")
    write_bluetoothctl_stub(stub_dir)
    saved = {k: os.environ.get(k) for k in ("DBUS_SYSTEM_BUS_ADDRESS", "PATH")}
    sim: BlueZSim | None = None
    try:
        sim = await start_bluez(air_addr, *args)
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = sim.bus_address
        os.environ["PATH"] = stub_dir + os.pathsep + (saved["PATH"] or os.defpath)
        yield sim
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if sim is not None:
            await stop_bluez(sim.proc)
        shutil.rmtree(stub_dir, ignore_errors=True)
