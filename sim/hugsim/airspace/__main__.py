"""``python -m hugsim.airspace [--port N] [--record FILE]``: run an airspace until killed.

The first stdout line is its address ("127.0.0.1:PORT"); give it to bands and apps.
"""

import argparse
import asyncio
import signal
import sys

from .server import Airspace


async def _main(port: int, rssi: int, record: str | None) -> None:
    server = Airspace(port=port, default_rssi=rssi, record_path=record)
    addr = await server.start()
    print(addr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hugsim.airspace", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--rssi", type=int, default=-55, help="default RSSI of every band in dBm")
    parser.add_argument("--record", help="append what a sniffer would capture to FILE (JSON lines)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_main(args.port, args.rssi, args.record))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
