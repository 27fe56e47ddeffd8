"""A companion in its own process, for SIGKILL tests: python child_sender.py STORE URL LINK N

Runs a Relay on STORE, sends N messages into LINK, prints PUBLISHED once each has been published
(not acknowledged: the recipient's handler is held by the test), then waits to be killed."""

from __future__ import annotations

import asyncio
import sys

from hugapp.core import relaystore as rs
from hugapp.core.relay import Relay
from hugapp.core.store import Store


async def main(path: str, url: str, link: str, n: int) -> None:
    store = Store(path)
    me = rs.identity(store)
    assert me is not None
    relay = Relay(store, me, url, poll_interval=0.05, reconnect_min=0.2, retry_interval=3600)
    task = asyncio.create_task(relay.run())
    await relay.connected.wait()
    for i in range(n):
        await relay.send(link, {"n": i})
    while any(item.attempts == 0 for item in rs.outbox_pending(store)):  # noqa: ASYNC110 - store poll
        await asyncio.sleep(0.02)
    print("PUBLISHED", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
