"""The core as a background service: Android's foreground service entry point (buildozer.spec
``services = Hugcore:app/hugapp/service.py:foreground:sticky``), also runnable anywhere with
``python -m hugapp.service`` (then it is the headless gateway's ``run``).

It runs the Companion (band links, relay, router) until stopped, so hugs are received, played and
acknowledged with the screen off. Settings come from the environment the app passes:
``HUG_BROKER`` (the family broker URL) and ``HUG_DATA`` (the data folder; default: the platform's).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from hugapp.core.companion import Companion
from hugapp.core.notify import make_notifier
from hugapp.core.store import Store
from hugapp.gateway import ble_config

log = logging.getLogger("hugapp.service")


async def serve(broker_url: str | None, data: Path | None, stop: asyncio.Event | None = None) -> None:
    store = Store(data / "companion.sqlite3" if data is not None else None)
    notifier = make_notifier()
    notifier.keep_alive()
    companion = Companion(store, ble_config(os.environ.get("HUG_AIRSPACE")), broker_url, notifier=notifier)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with companion:
        log.info("hug core running: %d band(s)", len(store.bands()))
        await stop.wait()
    store.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    data = os.environ.get("HUG_DATA")
    asyncio.run(serve(os.environ.get("HUG_BROKER") or None, Path(data) if data else None))


if __name__ == "__main__":
    main()
