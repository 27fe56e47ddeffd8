"""The pieces a fault-injection run is built from: phones as killable processes with a movable wall
clock, a broker that can be killed, and a network between phones and broker that can be cut."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

HERE = Path(__file__).resolve().parent
READY_TIMEOUT_S = 60.0


def _append(path: Path) -> BinaryIO:
    """A log file for a child process (the parent closes its copy once the child has it)."""
    return open(path, "ab")


class Proxy:
    """A TCP proxy between the phones and the broker: the network a fault can stall or cut.

    ``stall()``: nothing flows either way (packets are lost and TCP retransmits them once the
    network heals); ``cut()``: every connection is reset and new ones are refused, as when a phone
    changes networks; ``heal()`` ends either. ``refuse("broker")`` / ``accept("broker")``: while the
    broker is down, connecting to it is refused, as it would be without the proxy in between.
    """

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._refusing: set[str] = set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stall(self) -> None:
        self.flowing.clear()

    async def cut(self) -> None:
        await self.refuse("cut")
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def heal(self) -> None:
        self.flowing.set()
        await self.accept("cut")

    async def refuse(self, why: str) -> None:
        self._refusing.add(why)
        await self._stop_listening()

    async def accept(self, why: str) -> None:
        self._refusing.discard(why)
        if not self._refusing:
            await self._listen()

    async def close(self) -> None:
        await self.cut()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:  # the broker is down
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pair = [self._pipe(reader, up_writer), self._pipe(up_reader, writer)]
        tasks = [asyncio.ensure_future(p) for p in pair]
        self._tasks.update(tasks)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            w.transport.abort()
            self._writers.discard(w)
        for t in tasks:
            t.cancel()
            self._tasks.discard(t)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()


async def hugbutton(*args: str, skew_file: Path, timeout: float = 90.0) -> str:
    """Run one `hugbutton` command to completion on a phone whose clock is skewed by ``skew_file``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "skewed_phone.py"),
        str(skew_file),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, f"hugbutton {' '.join(args)} failed:\n{out.decode()}"
    return out.decode()


@dataclass
class Phone:
    """One companion: `hugbutton gateway ... run` in its own process, killable and restartable."""

    name: str
    data: Path
    broker_url: str
    airspace: str
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    _drain: asyncio.Task[None] | None = None
    skew: float = 0.0
    skew_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.skew_file = self.data / "clock-skew"
        self.set_skew(0.0)

    @property
    def store_path(self) -> Path:
        return self.data / "companion.sqlite3"

    def gateway_args(self, *command: str) -> list[str]:
        return [
            "gateway",
            "--data",
            str(self.data),
            "--broker",
            self.broker_url,
            "--airspace",
            self.airspace,
            "--name",
            self.name,
            *command,
        ]

    def command_line(self, *command: str) -> list[str]:
        skewed = [sys.executable, str(HERE / "skewed_phone.py"), str(self.skew_file)]
        return [*skewed, *self.gateway_args(*command)]

    async def run_command(self, *command: str) -> str:
        return await hugbutton(*self.gateway_args(*command), skew_file=self.skew_file)

    def set_skew(self, seconds: float) -> None:
        self.skew = seconds
        tmp = self.skew_file.with_suffix(".tmp")
        tmp.write_text(repr(seconds))
        os.replace(tmp, self.skew_file)

    async def start(self) -> None:
        log = _append(self.data / "gateway.log")
        self.proc = await asyncio.create_subprocess_exec(
            *self.command_line("run"),
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        log.close()
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), READY_TIMEOUT_S)
        assert b"running" in line, f"{self.name}'s gateway did not start: {line!r}"
        self.starts += 1
        stdout = self.proc.stdout

        async def drain() -> None:
            while await stdout.read(65536):
                pass

        self._drain = asyncio.ensure_future(drain())

    async def _end(self, sig: int) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(sig)
        await proc.wait()
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)

    async def kill(self) -> None:
        await self._end(signal.SIGKILL)

    async def stop(self) -> None:
        await self._end(signal.SIGTERM)

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        """Read this phone's store while it runs (WAL: readers never block the phone)."""
        db = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True, timeout=5.0)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()


class Mosquitto:
    """The family broker, a real Mosquitto on a fixed loopback port, killed and restarted at will."""

    def __init__(self, exe: str, workdir: Path, port: int, host: str = "127.0.0.1") -> None:
        self.exe = exe
        self.workdir = workdir
        self.host = host
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {port} {host}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "set_tcp_nodelay true\n"
            "log_dest stderr\nlog_type error\n" + ("user root\n" if os.geteuid() == 0 else "")
        )

    async def start(self) -> None:
        log = _append(self.workdir / "mosquitto.log")
        self.proc = await asyncio.create_subprocess_exec(
            self.exe, "-c", str(self.conf), stdout=log, stderr=log
        )
        log.close()
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while True:
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                if asyncio.get_running_loop().time() > deadline or self.proc.returncode is not None:
                    log_text = (self.workdir / "mosquitto.log").read_text()
                    raise RuntimeError(f"mosquitto did not start: {log_text}") from None
                await asyncio.sleep(0.02)  # readiness of an external process: nothing to await
                continue
            writer.close()
            break
        self.starts += 1

    async def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            await proc.wait()
