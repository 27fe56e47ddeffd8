"""A companion's relay in its own process, so a test can read its memory under attack:
python flood_victim.py STORE URL

Prints JSON lines: {"ready": rss_kb} once connected; {"got": n, "t": wall time} per message handled;
{"junk": count} each time the relay says junk is arriving; {"rss": kb} every 0.2 s."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from hugapp.core import relaystore as rs
from hugapp.core.relay import Incoming, Relay
from hugapp.core.store import Store


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def main(path: str, url: str) -> None:
    store = Store(path)
    me = rs.identity(store)
    assert me is not None

    async def on_message(m: Incoming) -> None:
        say(got=m.payload.get("n"), t=time.time())

    relay = Relay(store, me, url, on_message=on_message, on_junk=lambda n: say(junk=n), poll_interval=0.05)
    task = asyncio.create_task(relay.run())
    await relay.connected.wait()
    say(ready=rss_kb())
    while not task.done():
        say(rss=rss_kb())
        await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
