"""The service's end of the window link (see the package docstring): transport only; a
:class:`Handler` answers the requests and says what state to push."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, cast

from hugapp.window_link import HELLO_TIMEOUT_S, LINK_FILE

log = logging.getLogger("hugapp.window_link")

MAX_BACKLOG = 1 << 20  # a client that reads slower than this much output is dropped
MAX_REQUEST = 64 * 1024  # a window's line (its token, then each request); longer closes the connection
MAX_UNAUTHENTICATED = 8  # connections still owing their token; more are closed at once
PUSH_EVERY_S = 0.05  # change notifications are coalesced to at most one per this interval


class Session:
    """One connected window; ``values`` is the handler's per-window state (e.g. open offers)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.values: dict[str, Any] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, message: dict[str, Any]) -> None:
        if self.writer.is_closing():
            return
        if self.writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            log.warning("a window is not reading; dropping it")
            self.writer.close()
            return
        self.writer.write(json.dumps(message).encode() + b"\n")

    def progress(self, request_id: Any, data: Any) -> None:
        self.send({"event": "progress", "id": request_id, "data": data})


class Handler(Protocol):
    def state(self) -> Any:
        """What is pushed with ``hello`` and ``changed`` (JSON)."""
        ...

    async def answer(self, session: Session, request_id: Any, op: str, args: dict[str, Any]) -> Any:
        """The JSON result of one request; raises to refuse it."""
        ...

    def error_type(self, exc: BaseException) -> str:
        """The name a refused request's error travels under."""
        ...

    async def closed(self, session: Session) -> None:
        """The window went away: release what ``session.values`` holds."""
        ...


class _Admission(asyncio.StreamReaderProtocol):
    """A connection to the link: closed as it is made, before a byte is read, if not admitted."""

    def __init__(self, server: LinkServer, reader: asyncio.StreamReader) -> None:
        super().__init__(reader, server._serve)  # pyright: ignore[reportPrivateUsage]
        self._link = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._link.admit():
            transport.close()
            return
        super().connection_made(transport)


class LinkServer:
    """Serves ``handler`` to windows in other processes. Call :meth:`changed` when its state changes."""

    def __init__(self, handler: Handler, data_dir: Path, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.data_dir = data_dir
        self.host = host
        self.token = secrets.token_hex(16)
        self.port = 0
        self.clients: set[Session] = set()
        self._server: asyncio.Server | None = None
        self._dirty = asyncio.Event()
        self._pusher: asyncio.Task[None] | None = None
        self._unauthenticated = 0

    @property
    def link_file(self) -> Path:
        return self.data_dir / LINK_FILE

    async def __aenter__(self) -> LinkServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # the reader's limit bounds what a connection can make the service buffer, token or not
        self._server = await loop.create_server(
            lambda: _Admission(self, asyncio.StreamReader(MAX_REQUEST, loop)), self.host, 0
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.link_file.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"host": self.host, "port": self.port, "token": self.token, "pid": os.getpid()}, f)
        os.replace(tmp, self.link_file)  # a client never reads half a file
        self._pusher = asyncio.ensure_future(self._push())
        log.info("window link on %s:%d", self.host, self.port)

    async def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.link_file.read_text()).get("token") == self.token:
                self.link_file.unlink()
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
                message = {"event": "changed", "state": self.handler.state()}
                for c in list(self.clients):
                    c.send(message)
            await asyncio.sleep(PUSH_EVERY_S)

    def admit(self) -> bool:
        """A new connection, before anything is read from it: it owes its token; none is admitted
        while ``MAX_UNAUTHENTICATED`` do (a local process opening connections costs nothing more)."""
        if self._unauthenticated >= MAX_UNAUTHENTICATED:
            return False
        self._unauthenticated += 1
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(reader, writer)  # admitted: counted among those owing their token
        try:
            try:
                hello: Any = json.loads(await asyncio.wait_for(reader.readline(), HELLO_TIMEOUT_S) or b"null")
            finally:
                self._unauthenticated -= 1
            token = str(cast("dict[str, Any]", hello).get("token", "")) if isinstance(hello, dict) else ""
            if not secrets.compare_digest(token.encode(), self.token.encode()):
                log.warning("a window with a wrong token was refused")
                return
            self.clients.add(session)
            session.send({"event": "hello", "pid": os.getpid(), "state": self.handler.state()})
            while line := await reader.readline():
                request = json.loads(line)
                if not isinstance(request, dict):
                    break
                task = asyncio.ensure_future(self._answer(session, cast("dict[str, Any]", request)))
                session.tasks.add(task)
                task.add_done_callback(session.tasks.discard)
        except (
            OSError,
            ValueError,
            RecursionError,  # JSON nested past the parser's depth
            TimeoutError,
            asyncio.LimitOverrunError,
            asyncio.IncompleteReadError,
        ):
            pass  # a client that breaks the protocol or goes away is simply dropped
        finally:
            self.clients.discard(session)
            for task in list(session.tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self.handler.closed(session)
            writer.close()

    async def _answer(self, session: Session, request: dict[str, Any]) -> None:
        req_id = request.get("id")
        try:
            args: Any = request.get("args") or {}
            if not isinstance(args, dict):
                raise ValueError("a request's args must be an object")
            result = await self.handler.answer(
                session, req_id, str(request.get("op")), cast("dict[str, Any]", args)
            )
            reply: dict[str, Any] = {"id": req_id, "ok": True, "result": result}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the window, in words
            error = {"type": self.handler.error_type(exc), "message": str(exc) or type(exc).__name__}
            reply = {"id": req_id, "ok": False, "error": error}
        session.send(reply)
        self.changed()
