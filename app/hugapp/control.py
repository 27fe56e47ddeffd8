"""One owner of the Companion, any number of windows: the companion's local control channel.

On Android the foreground service (``hugapp.service``) owns the one Companion (the band links, the
relay, the router); the app's window is a client in another process. Both sides speak :class:`Core`,
the interface the UI's controller uses, so the window works the same over an in-process companion
(:class:`LocalCore`, the desktop ``hugbutton app``) or over the service (:class:`RemoteCore`)::

    async with ControlServer(LocalCore(companion), data_dir):        # in the service
        ...
    async with await RemoteCore.connect(data_dir, on_change=hub) as core:   # in the window
        Controller(core)

Transport: JSON lines over a loopback TCP socket. The server writes ``control.json`` (port and a
random token, mode 0600) into the data folder; a client's first line must carry the token. Requests
``{"id", "op", "args"}`` are answered ``{"id", "ok", "result" | "error"}``. The server pushes
``{"event": "changed", "live": ...}`` (link states, batteries, presence: what is not in the store)
when the core changes, and ``{"event": "found", "id", "band"}`` while a scan runs. What a screen
shows (history, bands, circles, settings) the window reads from the store, which both processes open;
every change to the core's data goes through the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, cast

from hugapp.core import bandlink, linking
from hugapp.core import relaystore as rs
from hugapp.core.bandlink import FoundBand, LinkState
from hugapp.core.companion import Companion
from hugapp.core.hugs import HugError, PlaySpec
from hugapp.core.hugstore import HistoryEntry
from hugapp.core.notify import Notifier, make_notifier
from hugapp.core.relay import RelayError
from hugapp.core.router import Router
from hugapp.core.schedule import Schedule
from hugapp.core.store import Store, StoreError

log = logging.getLogger("hugapp.control")

CONTROL_FILE = "control.json"
STORE_FILE = "companion.sqlite3"
HELLO_TIMEOUT_S = 5.0
MAX_LINE = 1 << 20  # a request or reply longer than this closes the connection
MAX_BACKLOG = 1 << 20  # a client that reads slower than this much output is dropped
PUSH_EVERY_S = 0.05  # change notifications are coalesced to at most one per this interval


class ControlError(Exception):
    """The service could not be reached, or it refused a request."""


# ------------------------------------------------------------------------------------ the interface


@dataclass(frozen=True)
class BandLive:
    """What the band link knows beyond the store."""

    state: LinkState | None  # None: no link (not paired here, or the core is not running it)
    battery: int | None


class Offer(Protocol):
    """A link code being offered (``linking.LinkOffer`` in the process that owns the core)."""

    @property
    def code(self) -> str: ...

    @property
    def expires_at(self) -> float: ...

    async def wait(self) -> str:
        """Until the other phone joined; returns its member's name."""
        ...

    async def cancel(self) -> None: ...


class Core(Protocol):
    """What the app's controller needs from a running companion, in this process or the service."""

    @property
    def store(self) -> Store: ...

    @property
    def notifier(self) -> Notifier: ...

    def identity(self) -> rs.Identity: ...

    def members(self) -> list[rs.Member]: ...

    def history(self, limit: int = 200) -> list[HistoryEntry]: ...

    def schedule(self) -> Schedule: ...

    def band_live(self, address: str) -> BandLive: ...

    def online(self, link_id: str, member_id: str) -> bool | None: ...

    async def send_hug(self, gesture: int, value: int, squeeze_ms: int = 0) -> str: ...

    async def scan(self, timeout: float, progress: Callable[[FoundBand], None]) -> list[FoundBand]: ...

    async def pair_band(self, address: str, name: str) -> None: ...

    async def forget_band(self, address: str) -> None: ...

    async def test_buzz(self, address: str) -> None: ...

    async def rename_band(self, address: str, name: str) -> None: ...

    async def offer_link(self) -> Offer: ...

    async def join_link(self, code: str) -> str: ...

    async def set_schedule(self, schedule: Schedule) -> None: ...

    async def rename_me(self, name: str) -> None: ...

    async def set_signature(self, member_id: str, signature: int) -> None: ...


def _members(store: Store, me: str) -> list[rs.Member]:
    out: list[rs.Member] = []
    for link in rs.links(store):
        out += [m for m in rs.members(store, link.link_id) if m.member_id != me]
    return out


class _LocalOffer:
    def __init__(self, offer: linking.LinkOffer) -> None:
        self.offer = offer
        self.code = offer.code
        self.expires_at = offer.expires_at

    async def wait(self) -> str:
        return (await self.offer.wait()).member.name

    async def cancel(self) -> None:
        await self.offer.cancel()


class LocalCore:
    """:class:`Core` over a Companion running in this process."""

    def __init__(self, companion: Companion) -> None:
        self.companion = companion

    @property
    def store(self) -> Store:
        return self.companion.store

    @property
    def notifier(self) -> Notifier:
        return self.companion.notifier

    def identity(self) -> rs.Identity:
        return rs.identity(self.store) or self.companion.me

    def members(self) -> list[rs.Member]:
        return self.companion.members()

    def history(self, limit: int = 200) -> list[HistoryEntry]:
        return self.companion.router.history(limit)

    def schedule(self) -> Schedule:
        return self.companion.router.schedule()

    def band_live(self, address: str) -> BandLive:
        link = self.companion.links.get(address)
        return BandLive(None, None) if link is None else BandLive(link.state, link.battery)

    def online(self, link_id: str, member_id: str) -> bool | None:
        relay = self.companion.relay
        return None if relay is None else relay.presence.get((link_id, member_id))

    def live(self) -> dict[str, Any]:
        """The state that is not in the store, as the server pushes it."""
        relay = self.companion.relay
        return {
            "bands": {
                a: {"state": link.state.value, "battery": link.battery}
                for a, link in self.companion.links.items()
            },
            "presence": [[k[0], k[1], v] for k, v in (relay.presence if relay else {}).items()],
        }

    async def send_hug(self, gesture: int, value: int, squeeze_ms: int = 0) -> str:
        return self.companion.router.send_from_screen(gesture, value, squeeze_ms)

    async def scan(self, timeout: float, progress: Callable[[FoundBand], None]) -> list[FoundBand]:
        return await self.companion.scan(timeout, progress)

    async def pair_band(self, address: str, name: str) -> None:
        await self.companion.pair_band(address, name or None)

    async def forget_band(self, address: str) -> None:
        await self.companion.forget_band(address)

    async def test_buzz(self, address: str) -> None:
        await self.companion.test_buzz(address)

    async def rename_band(self, address: str, name: str) -> None:
        self.store.rename_band(address, name)

    async def offer_link(self) -> Offer:
        return _LocalOffer(await self.companion.offer_link())

    async def join_link(self, code: str) -> str:
        return (await self.companion.join_link(code)).member.name

    async def set_schedule(self, schedule: Schedule) -> None:
        self.companion.router.set_schedule(schedule)

    async def rename_me(self, name: str) -> None:
        rs.rename_identity(self.store, name)

    async def set_signature(self, member_id: str, signature: int) -> None:
        for m in self.companion.members():
            if m.member_id == member_id:
                with self.store.transaction() as db:
                    rs.save_member(db, replace(m, signature=signature), self.companion.clock())


# ------------------------------------------------------------------------------------ errors on the wire

# Errors a request may raise, rebuilt on the client with their class so the window words them the same.
_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        bandlink.BandLinkError,
        bandlink.BandNotFound,
        bandlink.PairingWindowClosed,
        bandlink.BandUnavailable,
        bandlink.HandshakeFailed,
        linking.LinkError,
        linking.CodeInvalid,
        linking.CodeMismatch,
        linking.CodeExpired,
        linking.CodeNotFound,
        linking.CodeBurnt,
        RelayError,
        HugError,
        StoreError,
        ControlError,
        ValueError,
        TimeoutError,
        ConnectionRefusedError,
        OSError,
    )
}


def _error_to_wire(exc: BaseException) -> dict[str, str]:
    name = next((c.__name__ for c in type(exc).__mro__ if _ERRORS.get(c.__name__) is c), "ControlError")
    return {"type": name, "message": str(exc) or type(exc).__name__}


def _error_from_wire(error: Any) -> Exception:
    err = cast("dict[str, Any]", error) if isinstance(error, dict) else {}
    cls = _ERRORS.get(str(err.get("type")), ControlError)
    exc = cls.__new__(cls)  # the class without its __init__ (some build their own message)
    exc.args = (str(err.get("message", "the service refused that")),)
    return exc


# ------------------------------------------------------------------------------------ the server


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.offers: dict[str, Offer] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, message: dict[str, Any]) -> None:
        if self.writer.is_closing():
            return
        if self.writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            log.warning("a control client is not reading; dropping it")
            self.writer.close()
            return
        self.writer.write(json.dumps(message).encode() + b"\n")


class ControlServer:
    """Serves a :class:`LocalCore` to clients in other processes (see the module docstring).

    ``changed()`` must be called when the core changes (the Companion's ``on_change``)."""

    def __init__(self, core: LocalCore, data_dir: Path, host: str = "127.0.0.1") -> None:
        self.core = core
        self.data_dir = data_dir
        self.host = host
        self.token = secrets.token_hex(16)
        self.port = 0
        self.clients: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._dirty = asyncio.Event()
        self._pusher: asyncio.Task[None] | None = None

    @property
    def control_file(self) -> Path:
        return self.data_dir / CONTROL_FILE

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0, limit=MAX_LINE)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.control_file.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"host": self.host, "port": self.port, "token": self.token, "pid": os.getpid()}, f)
        os.replace(tmp, self.control_file)  # a client never reads half a file
        self._pusher = asyncio.ensure_future(self._push())
        log.info("control channel on %s:%d", self.host, self.port)

    async def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.control_file.read_text()).get("token") == self.token:
                self.control_file.unlink()
        if self._server is not None:
            self._server.close()
        tasks = [t for c in self.clients for t in c.tasks]
        if self._pusher is not None:
            tasks.append(self._pusher)
        for c in list(self.clients):
            c.writer.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def changed(self) -> None:
        self._dirty.set()

    async def _push(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if self.clients:
                message = {"event": "changed", "live": self.core.live()}
                for c in list(self.clients):
                    c.send(message)
            await asyncio.sleep(PUSH_EVERY_S)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(reader, writer)
        try:
            hello: Any = json.loads(await asyncio.wait_for(reader.readline(), HELLO_TIMEOUT_S) or b"null")
            token = str(cast("dict[str, Any]", hello).get("token", "")) if isinstance(hello, dict) else ""
            if not secrets.compare_digest(token.encode(), self.token.encode()):
                log.warning("a control client with a wrong token was refused")
                return
            self.clients.add(conn)
            conn.send({"event": "hello", "pid": os.getpid(), "live": self.core.live()})
            while line := await reader.readline():
                request = json.loads(line)
                if not isinstance(request, dict):
                    break
                task = asyncio.ensure_future(self._answer(conn, cast("dict[str, Any]", request)))
                conn.tasks.add(task)
                task.add_done_callback(conn.tasks.discard)
        except (OSError, ValueError, TimeoutError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            pass  # a client that breaks the protocol or goes away is simply dropped
        finally:
            self.clients.discard(conn)
            for task in list(conn.tasks):
                task.cancel()
            for offer in conn.offers.values():
                with contextlib.suppress(Exception):
                    await offer.cancel()
            writer.close()

    async def _answer(self, conn: _Connection, request: dict[str, Any]) -> None:
        req_id = request.get("id")
        try:
            args = cast("dict[str, Any]", request.get("args") or {})
            result = await self._do(conn, req_id, str(request.get("op")), args)
            reply: dict[str, Any] = {"id": req_id, "ok": True, "result": result}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the window, in words
            reply = {"id": req_id, "ok": False, "error": _error_to_wire(exc)}
        conn.send(reply)
        self.changed()

    async def _do(self, conn: _Connection, req_id: Any, op: str, a: dict[str, Any]) -> Any:
        core = self.core
        if op == "send_hug":
            return await core.send_hug(int(a["gesture"]), int(a["value"]), int(a.get("squeeze_ms", 0)))
        if op == "scan":

            def heard(band: FoundBand) -> None:
                conn.send({"event": "found", "id": req_id, "band": dataclasses.asdict(band)})

            return [dataclasses.asdict(b) for b in await core.scan(float(a["timeout"]), heard)]
        if op == "pair_band":
            return await core.pair_band(str(a["address"]), str(a.get("name", "")))
        if op == "forget_band":
            return await core.forget_band(str(a["address"]))
        if op == "test_buzz":
            return await core.test_buzz(str(a["address"]))
        if op == "rename_band":
            return await core.rename_band(str(a["address"]), str(a["name"]))
        if op == "offer_link":
            offer = await core.offer_link()
            conn.offers[offer.code] = offer
            return {"code": offer.code, "expires_at": offer.expires_at}
        if op == "offer_wait":
            offer = conn.offers.get(str(a["code"]))
            if offer is None:
                raise ControlError("that code is no longer offered")
            try:
                return await offer.wait()
            finally:
                conn.offers.pop(offer.code, None)
        if op == "offer_cancel":
            offer = conn.offers.pop(str(a["code"]), None)
            return await offer.cancel() if offer is not None else None
        if op == "join_link":
            return await core.join_link(str(a["code"]))
        if op == "set_schedule":
            return await core.set_schedule(Schedule.from_settings(a["schedule"]))
        if op == "rename_me":
            return await core.rename_me(str(a["name"]))
        if op == "set_signature":
            return await core.set_signature(str(a["member_id"]), int(a["signature"]))
        raise ControlError(f"unknown request {op!r}")


# ------------------------------------------------------------------------------------ the client


class _NoBands:
    """The window's Router only reads the store (history, schedule); it never plays."""

    def connected(self, address: str) -> bool:
        return False

    async def play(self, address: str, spec: PlaySpec, token: int) -> None:
        raise ControlError("the window does not drive bands")


class _RemoteOffer:
    def __init__(self, core: RemoteCore, code: str, expires_at: float) -> None:
        self.core = core
        self.code = code
        self.expires_at = expires_at

    async def wait(self) -> str:
        return str(await self.core.call("offer_wait", code=self.code))

    async def cancel(self) -> None:
        with contextlib.suppress(ControlError):
            await self.core.call("offer_cancel", code=self.code)


class RemoteCore:
    """:class:`Core` over the service's :class:`ControlServer`; reconnects if the service restarts.

    Displayed data is read from the store (opened once the service is up, so it has migrated it);
    actions are requests; ``on_change`` is called when the service reports a change or the channel
    drops or comes back."""

    def __init__(
        self,
        data_dir: Path,
        *,
        on_change: Callable[[], None] = lambda: None,
        notifier: Notifier | None = None,
        reconnect_timeout: float = 30.0,
    ) -> None:
        self.data_dir = data_dir
        self.on_change = on_change
        self._notifier = notifier or make_notifier()
        self.reconnect_timeout = reconnect_timeout
        self.connected = False
        self.service_pid = 0
        self._store: Store | None = None
        self._reader: Router | None = None
        self._live: dict[str, Any] = {"bands": {}, "presence": []}
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._progress: dict[int, Callable[[FoundBand], None]] = {}
        self._next_id = 0
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()

    @classmethod
    async def connect(
        cls,
        data_dir: Path,
        *,
        on_change: Callable[[], None] = lambda: None,
        notifier: Notifier | None = None,
        timeout: float = 30.0,
    ) -> RemoteCore:
        """Connect to the service serving ``data_dir`` (waiting up to ``timeout`` for it to start)."""
        core = cls(data_dir, on_change=on_change, notifier=notifier, reconnect_timeout=timeout)
        await core.start(timeout)
        return core

    async def start(self, timeout: float) -> None:
        reader = await self._open(time.monotonic() + timeout)
        if self._store is None:
            self._store = Store(self.data_dir / STORE_FILE)
        self._task = asyncio.ensure_future(self._run(reader))

    async def __aenter__(self) -> RemoteCore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._drop(ControlError("the window closed"))
        if self._store is not None:
            self._store.close()

    # -- the channel -------------------------------------------------------------------------------

    async def _open(self, deadline: float) -> asyncio.StreamReader:
        """Read control.json and say hello, retrying until ``deadline`` (the service may be starting)."""
        delay = 0.05
        while True:
            try:
                info = json.loads((self.data_dir / CONTROL_FILE).read_text())
                reader, writer = await asyncio.open_connection(
                    str(info["host"]), int(info["port"]), limit=MAX_LINE
                )
                writer.write(json.dumps({"token": str(info["token"])}).encode() + b"\n")
                hello = json.loads(await asyncio.wait_for(reader.readline(), HELLO_TIMEOUT_S) or b"null")
                if not isinstance(hello, dict) or cast("dict[str, Any]", hello).get("event") != "hello":
                    writer.close()
                    raise ControlError("the service refused this window")
                hello = cast("dict[str, Any]", hello)
                self._writer = writer
                self.service_pid = int(hello.get("pid", 0))
                self._live = cast("dict[str, Any]", hello.get("live") or self._live)
                self.connected = True
                self._up.set()
                return reader
            except (OSError, ValueError, KeyError, TimeoutError, ControlError) as exc:
                if time.monotonic() + delay > deadline:
                    raise ControlError(
                        f"the hug service is not running (no answer in {self.data_dir}: {exc})"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def _run(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                while line := await reader.readline():
                    self._on_message(json.loads(line))
            except (OSError, ValueError, asyncio.LimitOverrunError):
                pass
            self.connected = False
            self._up.clear()
            self._drop(ControlError("the hug service stopped; trying again"))
            self.on_change()
            while True:
                try:
                    reader = await self._open(time.monotonic() + self.reconnect_timeout)
                    break
                except ControlError:
                    log.warning("the hug service is not answering; still trying")
            self.on_change()

    def _drop(self, exc: Exception) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        self._progress.clear()

    def _on_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        m = cast("dict[str, Any]", message)
        event = m.get("event")
        if event == "changed":
            self._live = cast("dict[str, Any]", m.get("live") or self._live)
            self.on_change()
        elif event == "found":
            progress = self._progress.get(int(m.get("id", -1)))
            if progress is not None:
                progress(FoundBand(**cast("dict[str, Any]", m["band"])))
        elif "id" in m:
            fut = self._pending.pop(int(m["id"]), None)
            if fut is not None and not fut.done():
                if m.get("ok"):
                    fut.set_result(m.get("result"))
                else:
                    fut.set_exception(_error_from_wire(m.get("error")))

    async def call(self, op: str, progress: Callable[[FoundBand], None] | None = None, **args: Any) -> Any:
        """One request; raises what the service raised (same class), or ControlError."""
        if self._writer is None:
            try:
                await asyncio.wait_for(self._up.wait(), 5.0)
            except TimeoutError:
                raise ControlError("the hug service is not running — try again in a moment") from None
        assert self._writer is not None
        self._next_id += 1
        req_id = self._next_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        if progress is not None:
            self._progress[req_id] = progress
        self._writer.write(json.dumps({"id": req_id, "op": op, "args": args}).encode() + b"\n")
        try:
            return await fut
        finally:
            self._pending.pop(req_id, None)
            self._progress.pop(req_id, None)

    # -- Core: reads -------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise ControlError("not connected to the hug service yet")
        return self._store

    @property
    def notifier(self) -> Notifier:
        return self._notifier

    def identity(self) -> rs.Identity:
        me = rs.identity(self.store)
        if me is None:
            raise ControlError("the hug service has not set this phone up yet")
        return me

    def _router(self) -> Router:
        if self._reader is None:
            self._reader = Router(self.store, self.identity(), _NoBands(), self._notifier)
        return self._reader

    def members(self) -> list[rs.Member]:
        return _members(self.store, self.identity().member_id)

    def history(self, limit: int = 200) -> list[HistoryEntry]:
        return self._router().history(limit)

    def schedule(self) -> Schedule:
        return self._router().schedule()

    def band_live(self, address: str) -> BandLive:
        bands = cast("dict[str, Any]", self._live.get("bands") or {})
        band = bands.get(address)
        if not isinstance(band, dict):
            return BandLive(None, None)
        b = cast("dict[str, Any]", band)
        battery = b.get("battery")
        return BandLive(LinkState(b["state"]), int(battery) if battery is not None else None)

    def online(self, link_id: str, member_id: str) -> bool | None:
        for entry in cast("list[list[Any]]", self._live.get("presence") or []):
            if entry[0] == link_id and entry[1] == member_id:
                return bool(entry[2])
        return None

    # -- Core: actions -----------------------------------------------------------------------------

    async def send_hug(self, gesture: int, value: int, squeeze_ms: int = 0) -> str:
        return str(await self.call("send_hug", gesture=gesture, value=value, squeeze_ms=squeeze_ms))

    async def scan(self, timeout: float, progress: Callable[[FoundBand], None]) -> list[FoundBand]:
        found = await self.call("scan", progress=progress, timeout=timeout)
        return [FoundBand(**b) for b in cast("list[dict[str, Any]]", found)]

    async def pair_band(self, address: str, name: str) -> None:
        await self.call("pair_band", address=address, name=name)

    async def forget_band(self, address: str) -> None:
        await self.call("forget_band", address=address)

    async def test_buzz(self, address: str) -> None:
        await self.call("test_buzz", address=address)

    async def rename_band(self, address: str, name: str) -> None:
        await self.call("rename_band", address=address, name=name)

    async def offer_link(self) -> Offer:
        offer = cast("dict[str, Any]", await self.call("offer_link"))
        return _RemoteOffer(self, str(offer["code"]), float(offer["expires_at"]))

    async def join_link(self, code: str) -> str:
        return str(await self.call("join_link", code=code))

    async def set_schedule(self, schedule: Schedule) -> None:
        await self.call("set_schedule", schedule=schedule.to_settings())

    async def rename_me(self, name: str) -> None:
        await self.call("rename_me", name=name)

    async def set_signature(self, member_id: str, signature: int) -> None:
        await self.call("set_signature", member_id=member_id, signature=signature)
