"""Shared asyncio request/response plumbing for the central and control clients."""

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from . import wire

DEFAULT_TIMEOUT = 10.0


class _AsyncSession:
    def __init__(self, airspace_addr: str) -> None:
        self.airspace_addr = airspace_addr
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reply_hooks: dict[int, Callable[[dict[str, Any]], None]] = {}
        self._rx_task: asyncio.Task[None] | None = None
        self.closed = True

    async def _open(self, hello: dict[str, Any], timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        host, port = wire.parse_addr(self.airspace_addr)
        try:
            self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except OSError as exc:
            raise wire.NotConnectedError(
                "cannot reach the airspace at %s: %s" % (self.airspace_addr, exc)
            ) from exc
        self.closed = False
        self._rx_task = asyncio.get_running_loop().create_task(self._rx_loop())
        return await self._request(dict(hello, op="hello"), timeout)

    async def _request(
        self,
        msg: dict[str, Any],
        timeout: float = DEFAULT_TIMEOUT,
        on_reply: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Send a request and await its answer. ``on_reply(reply)`` runs inside the receive loop on
        success, before any later event is handled (so no event can slip past it)."""
        if self.closed or self._writer is None:
            raise wire.NotConnectedError("the airspace session is closed")
        req_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        if on_reply is not None:
            self._reply_hooks[req_id] = on_reply
        msg = dict(msg, id=req_id)
        try:
            self._writer.write(wire.encode(msg))
            await self._writer.drain()
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise wire.AirspaceTimeoutError(
                "airspace %r timed out after %.1f s" % (msg.get("op"), timeout)
            ) from None
        except ConnectionError as exc:
            raise wire.NotConnectedError("airspace connection lost: %s" % exc) from exc
        finally:
            self._pending.pop(req_id, None)
            self._reply_hooks.pop(req_id, None)
        if not reply.get("ok"):
            raise wire.error_from_reply(reply)
        return reply

    async def _rx_loop(self) -> None:
        try:
            while True:
                try:
                    msg = await wire.read_frame(self._reader)
                except (ConnectionError, ValueError):
                    msg = None
                if msg is None:
                    break
                if "id" in msg:
                    fut = self._pending.get(msg["id"])
                    hook = self._reply_hooks.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        if hook is not None and msg.get("ok"):
                            hook(msg)
                        fut.set_result(msg)
                else:
                    self._on_event(msg)
        finally:
            self.closed = True
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(wire.NotConnectedError("the airspace went away"))
            self._on_closed()

    def _on_event(self, msg: dict[str, Any]) -> None:  # overridden
        pass

    def _on_closed(self) -> None:  # overridden
        pass

    async def close(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except ConnectionError:
                pass
        if self._rx_task is not None:
            try:
                await asyncio.wait_for(self._rx_task, 2.0)
            except (TimeoutError, asyncio.CancelledError):
                self._rx_task.cancel()
        self.closed = True


def call_soon(callback: Callable[..., Any], *args: Any) -> None:
    """Call a user callback; if it is a coroutine function, run it as a task (kept referenced)."""
    result = callback(*args)
    if asyncio.iscoroutine(result):
        task = asyncio.get_running_loop().create_task(result)
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)


_tasks: set[asyncio.Task[Any]] = set()
