"""`hugbutton app --sim` / `--airspace HOST:PORT`: the companion's window on the simulated radio.

With ``--sim``: an in-process airspace, an embedded broker (unless ``--broker``), a virtual band (the
real firmware, its own process) and the band's own window; it prints how to start a second phone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from hugapp.core.broker import EmbeddedBroker
from hugapp.core.store import default_path
from hugapp.dev.radio import ble_config
from hugapp.ui import launch
from hugsim.airspace import Airspace
from hugsim.band.process import BandProcess


async def start_band_window(airspace: str, address: str) -> asyncio.subprocess.Process:
    """The virtual band's own window (a second Kivy process: one window per Kivy process)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hugapp.dev.simband", "--airspace", airspace, "--address", address
    )


async def _close(window: asyncio.subprocess.Process) -> None:
    if window.returncode is None:
        window.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(window.wait(), 5)
        if window.returncode is None:
            window.kill()
            await window.wait()


async def _run(args: argparse.Namespace) -> int:
    data = Path(args.data) if args.data else (default_path().parent / "sim" if args.sim else None)
    async with contextlib.AsyncExitStack() as stack:
        airspace: str | None = args.airspace
        broker_url: str | None = args.broker
        if args.sim:
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
            stack.push_async_callback(_close, window)
            print(f"virtual band {address} in the airspace {airspace}; broker {broker_url}", flush=True)
            print(
                "  pair it: Bands > Find bands > Pair, then hold the heart in the band's window 5 s\n"
                "  a second phone: hugbutton app --broker "
                f"{broker_url} --airspace {airspace} --data /tmp/phone2 --name Dad\n"
                f"  (and its band: hugbutton band sim --airspace {airspace})",
                flush=True,
            )
        return await launch.run_companion(args, ble_config(airspace), data, broker_url)


def main(args: argparse.Namespace) -> int:
    return launch.run_main(_run(args))
