"""`hugbutton app`: the companion's window on this computer, optionally with a simulated world.

    hugbutton app [--broker URL] [--data DIR] [--airspace HOST:PORT] [--name NAME]
    hugbutton app --sim      # + an in-process airspace, a virtual band (real firmware, own process)
                             #   and the band's own window (the dev wing: hugapp.dev.simapp)
    hugbutton app --service  # the window only: the companion runs in the hug service
                             #   (``python -m hugapp.service`` on the same data; Android's mode)

With ``--sim`` and no ``--broker``, an embedded broker is started too, so a second app can link:
the command prints how to start it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hugapp.core.bandlink import BleConfig
from hugapp.core.companion import Companion
from hugapp.core.notify import make_notifier
from hugapp.core.store import Store, default_path
from hugapp.gateway import run_command
from hugapp.ui import platform
from hugapp.window_link import WindowLinkError
from hugapp.window_link.remote import RemoteCompanion

log = logging.getLogger("hugapp.ui")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        help="the family broker, e.g. mqtt://127.0.0.1:1883, or a cluster's nodes separated by commas "
        "(needed to link phones)",
    )
    parser.add_argument("--data", help=f"folder for this phone's data (default: {default_path().parent})")
    parser.add_argument("--airspace", help="use the simulated radio at HOST:PORT instead of Bluetooth")
    parser.add_argument("--name", default="Me", help="your name in your circles (first run only)")
    parser.add_argument(
        "--sim",
        action="store_true",
        help="start a simulated airspace, a virtual band and its window (and a broker unless --broker)",
    )
    parser.add_argument(
        "--service",
        action="store_true",
        help="connect to the hug service (python -m hugapp.service) that owns this --data's companion",
    )


async def _run_client(args: argparse.Namespace) -> int:
    """The window as a client of the service, which owns the one Companion (Android's mode)."""
    from hugapp.ui.app import ChangeBell, run_app

    data = Path(args.data) if args.data else default_path().parent
    service = platform.make_service()
    if not await service.request_permissions():
        log.warning("Bluetooth permissions not granted: the hug service cannot reach the bands")
    service.start(json.dumps({"broker": args.broker, "data": str(data)}))
    service.request_battery_exemption()
    bell = ChangeBell()
    async with await RemoteCompanion.connect(data, on_change=bell) as remote:
        await run_app(remote, bell)
    return 0


async def run_companion(
    args: argparse.Namespace, ble: BleConfig, data: Path | None, broker_url: str | None
) -> int:
    """The window with its own Companion on ``ble`` (this computer's Bluetooth unless the dev wing
    passes the simulated radio's backend)."""
    from hugapp.ui.app import ChangeBell, run_app

    data_path = data / "companion.sqlite3" if data is not None else None
    if data_path is not None:
        data_path.parent.mkdir(parents=True, exist_ok=True)
    bell = ChangeBell()
    notifier = make_notifier()
    companion = Companion(
        Store(data_path), ble, broker_url, name=args.name, on_change=bell, notifier=notifier
    )
    service = platform.make_service()
    service.start()
    service.request_battery_exemption()
    try:
        async with companion:
            await run_app(companion, bell)
    finally:
        service.stop()
    return 0


async def _run(args: argparse.Namespace) -> int:
    if args.service:
        return await _run_client(args)
    return await run_companion(args, BleConfig(), Path(args.data) if args.data else None, args.broker)


def run_main(command: Coroutine[Any, Any, int]) -> int:
    """Run an app command: the companion's errors and the window link's become a message and exit 2."""
    try:
        return run_command(command)
    except WindowLinkError as exc:
        print(f"hugbutton app: {exc}", file=sys.stderr)
        return 2


def main(args: argparse.Namespace) -> int:
    return run_main(_run(args))
