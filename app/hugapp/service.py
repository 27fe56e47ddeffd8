"""The companion as a background service: Android's foreground service entry point (buildozer.spec
``services = Hugservice:app/hugapp/service.py:foreground:sticky:foregroundServiceType=connectedDevice``),
also runnable anywhere with ``python -m hugapp.service``.

It owns the one Companion (band links, relay, router) until stopped, so hugs are received, played and
acknowledged with the screen off, and serves it to the app's window over the window link
(``hugapp.window_link``): the window never runs a second Companion on the same store and bands.
Settings come from the environment: ``HUG_BROKER`` (the family broker URL, or a cluster's node URLs
separated by commas), ``HUG_DATA`` (the data
folder; default: the platform's), or from the JSON argument the app starts the service with on Android
(``PYTHON_SERVICE_ARGUMENT``: broker, data). ``python -m hugapp.dev.service`` runs the same service on the
simulated radio (``HUG_AIRSPACE``). On a phone in hub mode (``hugapp.ui.phonemode``) it ends at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any, cast

from hugapp.core.bandlink import BleConfig
from hugapp.core.companion import Companion
from hugapp.core.notify import make_notifier
from hugapp.core.store import Store, default_path
from hugapp.ui.phonemode import HUB_MODE, read_mode
from hugapp.window_link import STORE_FILE
from hugapp.window_link.api_wire import CompanionHandler
from hugapp.window_link.server import LinkServer

log = logging.getLogger("hugapp.service")


async def serve(
    broker_url: str | None,
    data: Path | None,
    stop: asyncio.Event | None = None,
    ble: BleConfig | None = None,
) -> None:
    data_dir = data if data is not None else default_path().parent
    if read_mode(data_dir) == HUB_MODE:  # Android restarts a sticky service: not the family's, on a hub
        log.info("this phone is the class hub: the hug service does not run the family's companion")
        return
    store = Store(data_dir / STORE_FILE)
    notifier = make_notifier()
    servers: list[LinkServer] = []  # the companion reports changes to the channel

    def changed() -> None:
        for server in servers:
            server.changed()

    companion = Companion(store, ble or BleConfig(), broker_url, notifier=notifier, on_change=changed)
    servers.append(LinkServer(CompanionHandler(companion), data_dir))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with companion, servers[0]:
        log.info("hug service running: %d band(s)", len(store.bands()))
        await stop.wait()
    store.close()


def _settings() -> tuple[str | None, Path | None]:
    arg: Any = None
    raw = os.environ.get("PYTHON_SERVICE_ARGUMENT")  # python-for-android's service argument
    if raw:
        try:
            arg = json.loads(raw)
        except ValueError:
            log.warning("ignoring a service argument that is not JSON: %r", raw[:80])
    given = cast("dict[str, Any]", arg) if isinstance(arg, dict) else {}
    broker = os.environ.get("HUG_BROKER") or given.get("broker") or None
    data = os.environ.get("HUG_DATA") or given.get("data") or None
    return (str(broker) if broker else None), (Path(str(data)) if data else None)


def main(ble: BleConfig | None = None) -> None:
    logging.basicConfig(level=logging.INFO)
    broker, data = _settings()
    asyncio.run(serve(broker, data, ble=ble))


if __name__ == "__main__":
    main()
