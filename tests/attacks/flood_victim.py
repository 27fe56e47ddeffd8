"""A companion in its own process, so a test can read its memory under attack:
python flood_victim.py STORE URL

Prints JSON lines: {"ready": rss_kb} once connected; {"got": n, "t": wall time} per hug received;
{"junk": title} per notification saying junk is arriving; {"rss": kb} every 0.2 s."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from hugapp.core.bandlink import BleConfig
from hugapp.core.companion import Companion
from hugapp.core.notify import DesktopNotifier
from hugapp.core.relay import Incoming
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
    notifier = DesktopNotifier()
    phone = Companion(Store(path), BleConfig(), url, notifier=notifier)
    handle = phone.router.on_relay_message

    async def on_message(m: Incoming) -> None:
        await handle(m)
        say(got=m.payload.get("id"), t=time.time())

    assert phone.relay is not None
    phone.relay.on_message = on_message
    told = 0
    async with phone:
        await phone.relay.connected.wait()
        say(ready=rss_kb())
        while True:
            say(rss=rss_kb())
            for shown in notifier.notifications()[told:]:
                if "Junk" in shown.title:
                    say(junk=shown.title)
            told = len(notifier.notifications())
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
