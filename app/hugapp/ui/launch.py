"""`hugbutton app`: the companion's window on this computer, optionally with a simulated world.

    hugbutton app [--broker URL] [--data DIR] [--airspace HOST:PORT] [--name NAME]
    hugbutton app --sim      # + an in-process airspace, a virtual band (real firmware, own process)
                             #   and the band's own window: press its heart, watch it buzz
    hugbutton app --service  # the window only: the companion runs in the hug service
                             #   (``python -m hugapp.service`` on the same data; Android's mode)

With ``--sim`` and no ``--broker``, an embedded broker is started too, so a second app can link:
the command prints how to start it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from pathlib import Path

from hugapp.control import ControlError, RemoteCore
from hugapp.core.companion import Companion
from hugapp.core.notify import make_notifier
from hugapp.core.store import Store, default_path
from hugapp.gateway import ble_config, run_command
from hugapp.ui import platform

log = logging.getLogger("hugapp.ui")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker", help="the family broker, e.g. mqtt://127.0.0.1:1883 (needed to link phones)"
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


async def start_band_window(airspace: str, address: str) -> asyncio.subprocess.Process:
    """The virtual band's own window (a second Kivy process: one window per Kivy process)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hugapp.ui.simband", "--airspace", airspace, "--address", address
    )


async def _run_client(args: argparse.Namespace) -> int:
    """The window as a client of the service, which owns the one Companion (Android's mode)."""
    from hugapp.ui.app import ChangeHub, run_app

    data = Path(args.data) if args.data else default_path().parent
    service = platform.make_service()
    if not await service.request_permissions():
        log.warning("Bluetooth permissions not granted: the hug service cannot reach the bands")
    service.start(json.dumps({"broker": args.broker, "data": str(data)}))
    service.request_battery_exemption()
    hub = ChangeHub()
    core = await RemoteCore.connect(data, on_change=hub, notifier=make_notifier())
    async with core:
        await run_app(core, hub)
    return 0


async def _run(args: argparse.Namespace) -> int:
    from hugapp.ui.app import ChangeHub, run_app

    if getattr(args, "service", False):
        return await _run_client(args)
    data = Path(args.data) if args.data else (default_path().parent / "sim" if args.sim else None)
    async with contextlib.AsyncExitStack() as stack:
        airspace: str | None = args.airspace
        broker_url: str | None = args.broker
        if args.sim:
            from hugapp.core.broker import EmbeddedBroker
            from hugsim.airspace import Airspace
            from hugsim.virtualband import BandProcess

            if airspace is None:
                server = Airspace()
                airspace = await server.start()
                stack.push_async_callback(server.close)
            if broker_url is None:
                broker = EmbeddedBroker("127.0.0.1", 0)
                await broker.start()
                stack.push_async_callback(broker.stop)
                broker_url = broker.url
            assert data is not None
            band = BandProcess(airspace, data / "sim-band")
            address = await band.start()
            stack.push_async_callback(band.stop)
            window = await start_band_window(airspace, address)

            async def close_window() -> None:
                if window.returncode is None:
                    window.terminate()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(window.wait(), 5)
                    if window.returncode is None:
                        window.kill()
                        await window.wait()

            stack.push_async_callback(close_window)
            print(f"virtual band {address} in the airspace {airspace}; broker {broker_url}", flush=True)
            print(
                "  pair it: Bands > Find bands > Pair, then hold the heart in the band's window 5 s\n"
                "  a second phone: hugbutton app --broker "
                f"{broker_url} --airspace {airspace} --data /tmp/phone2 --name Dad\n"
                f"  (and its band: hugbutton band sim --airspace {airspace})",
                flush=True,
            )
        data_path = data / "companion.sqlite3" if data is not None else None
        if data_path is not None:
            data_path.parent.mkdir(parents=True, exist_ok=True)
        hub = ChangeHub()
        notifier = make_notifier()
        companion = Companion(
            Store(data_path),
            ble_config(airspace),
            broker_url,
            name=args.name,
            on_change=hub,
            notifier=notifier,
        )
        service = platform.make_service()
        service.start()
        service.request_battery_exemption()
        stack.callback(service.stop)
        async with companion:
            await run_app(companion, hub)
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return run_command(_run(args))
    except ControlError as exc:
        print(f"hugbutton app: {exc}", file=sys.stderr)
        return 2
