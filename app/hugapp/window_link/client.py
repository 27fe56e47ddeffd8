"""The window's end of the window link (see the package docstring): transport only. Connects to the
service serving a data folder, reconnects if it restarts, sends requests and keeps the pushed state."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from hugapp.window_link import HELLO_TIMEOUT_S, LINK_FILE, MAX_LINE, WindowLinkError

log = logging.getLogger("hugapp.window_link")

ErrorFromWire = Callable[[str, str], Exception]  # (type, message) -> the exception to raise


class LinkClient:
    """``state`` is the service's latest push; ``on_change`` is called when it changes or the link
    drops or comes back; a refused request raises ``error_from_wire(type, message)``."""

    def __init__(
        self,
        data_dir: Path,
        error_from_wire: ErrorFromWire,
        *,
        on_change: Callable[[], None] = lambda: None,
        reconnect_timeout: float = 30.0,
    ) -> None:
        self.data_dir = data_dir
        self.error_from_wire = error_from_wire
        self.on_change = on_change
        self.reconnect_timeout = reconnect_timeout
        self.connected = False
        self.service_pid = 0
        self.state: Any = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._progress: dict[int, Callable[[Any], None]] = {}
        self._next_id = 0
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()

    async def start(self, timeout: float) -> None:
        """Connect, waiting up to ``timeout`` for the service to start; WindowLinkError if it does not."""
        reader = await self._open(time.monotonic() + timeout)
        self._task = asyncio.ensure_future(self._run(reader))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._drop(WindowLinkError("the window closed"))

    async def _open(self, deadline: float) -> asyncio.StreamReader:
        """Read the link file and say hello, retrying until ``deadline`` (the service may be starting)."""
        delay = 0.05
        while True:
            try:
                info = json.loads((self.data_dir / LINK_FILE).read_text())
                reader, writer = await asyncio.open_connection(
                    str(info["host"]), int(info["port"]), limit=MAX_LINE
                )
                writer.write(json.dumps({"token": str(info["token"])}).encode() + b"\n")
                hello = json.loads(await asyncio.wait_for(reader.readline(), HELLO_TIMEOUT_S) or b"null")
                if not isinstance(hello, dict) or cast("dict[str, Any]", hello).get("event") != "hello":
                    writer.close()
                    raise WindowLinkError("the service refused this window")
                hello = cast("dict[str, Any]", hello)
                self._writer = writer
                self.service_pid = int(hello.get("pid", 0))
                self.state = hello.get("state")
                self.connected = True
                self._up.set()
                return reader
            except (OSError, ValueError, KeyError, TimeoutError, WindowLinkError) as exc:
                if time.monotonic() + delay > deadline:
                    raise WindowLinkError(
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
            self._drop(WindowLinkError("the hug service stopped; trying again"))
            self.on_change()
            while True:
                try:
                    reader = await self._open(time.monotonic() + self.reconnect_timeout)
                    break
                except WindowLinkError:
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
            self.state = m.get("state")
            self.on_change()
        elif event == "progress":
            progress = self._progress.get(int(m.get("id", -1)))
            if progress is not None:
                progress(m.get("data"))
        elif "id" in m:
            fut = self._pending.pop(int(m["id"]), None)
            if fut is not None and not fut.done():
                if m.get("ok"):
                    fut.set_result(m.get("result"))
                else:
                    error: Any = m.get("error")
                    err = cast("dict[str, Any]", error) if isinstance(error, dict) else {}
                    message_text = str(err.get("message", "the service refused that"))
                    fut.set_exception(self.error_from_wire(str(err.get("type")), message_text))

    async def call(self, op: str, args: dict[str, Any], progress: Callable[[Any], None] | None = None) -> Any:
        """One request; its JSON result, or raises what the service raised (or WindowLinkError)."""
        if self._writer is None:
            try:
                await asyncio.wait_for(self._up.wait(), 5.0)
            except TimeoutError:
                raise WindowLinkError("the hug service is not running — try again in a moment") from None
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
