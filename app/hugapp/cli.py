"""The `hugbutton` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hugapp import bandtools

MAX_CLASS = 40  # children's bands on the demo's hub (each a MicroPython process)


def _demo(args: argparse.Namespace) -> int:
    if args.ui and args.hugs:
        print("hugbutton demo: --ui shows the school day; it does not go with --hugs", file=sys.stderr)
        return 2
    if not 1 <= args.klass <= MAX_CLASS:
        print(f"hugbutton demo: --class takes 1 to {MAX_CLASS} children (Mia is one)", file=sys.stderr)
        return 2
    if args.ui:
        from hugapp.ui.platform import window_problem

        problem = window_problem()
        if problem:
            print(f"hugbutton demo: --ui: {problem}; run it without --ui", file=sys.stderr)
            return 2
        os.environ.setdefault("KCFG_KIVY_LOG_LEVEL", "warning")  # Kivy's start-up chatter off
    from hugapp.dev import demo

    return demo.main(args)


def _band_build(args: argparse.Namespace) -> int:
    out = Path(args.out or f"build/{args.board}")
    print(f"building the band firmware for {args.board} into {out}/")
    built = bandtools.build(args.board, out)
    total = sum(f.size for f in built)
    print(f"built {len(built)} files, {total} bytes")
    print(f"copy them to a band with: hugbutton band flash --board {args.board} --port PORT")
    return 0


def _band_flash(args: argparse.Namespace) -> int:
    out = Path(args.out or f"build/{args.board}")
    print(f"flashing {args.board} on {args.port}")
    bandtools.flash(args.board, args.port, out)
    print("done: the band restarts and advertises as a Hug Button")
    return 0


def _band_sim(args: argparse.Namespace) -> int:
    from hugapp.dev import bandsim

    return bandsim.main(args)


def _gateway(args: argparse.Namespace) -> int:
    from hugapp import gateway

    if args.airspace:  # the simulated radio: the dev wing's seam
        from hugapp.dev.radio import ble_config

        return gateway.main(args, ble_config(args.airspace))
    return gateway.main(args)


def _hub(args: argparse.Namespace) -> int:
    from hugapp import hubcli

    if args.airspace:  # the simulated radio: the dev wing's seam
        from hugapp.dev.radio import ble_config

        return hubcli.main(args, ble_config(args.airspace, "hub"))
    return hubcli.main(args)


def _app(args: argparse.Namespace) -> int:
    if args.sim or args.airspace:  # the simulated radio: the dev wing
        from hugapp.dev import simapp

        return simapp.main(args)
    from hugapp.ui import launch

    return launch.main(args)


def _broker(args: argparse.Namespace) -> int:
    import asyncio

    from hugapp.core.broker import BrokerError, run_broker

    try:
        if args.cluster:  # nats-server nodes on loopback: a development cluster
            from hugapp.dev.cluster import run_cluster

            asyncio.run(run_cluster(args.cluster))
        else:
            asyncio.run(run_broker(args.host, args.port))
    except KeyboardInterrupt:
        pass
    except BrokerError as exc:
        print(f"hugbutton broker: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hugbutton", description="Hug Button: wristbands that send hugs.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="a school day of hugs: Mia (no phone) at school, Mum and Dad at work")
    demo.add_argument("--hugs", type=int, help="instead of the day, send N hugs and measure them")
    demo.add_argument(
        "--class",
        dest="klass",
        type=int,
        default=1,
        metavar="N",
        help="N children's bands on the class hub: Mia and N-1 classmates of other families (default 1)",
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    demo.add_argument(
        "--broker",
        help="use this MQTT broker, or a cluster's nodes mqtt://a,mqtt://b,... (default: the embedded one)",
    )
    demo.add_argument("--ui", action="store_true", help="show both phones' apps side by side while it runs")
    demo.set_defaults(func=_demo)

    gateway = sub.add_parser("gateway", help="run the companion headless (a home gateway)")
    from hugapp.gateway import add_arguments

    add_arguments(gateway)
    gateway.set_defaults(func=_gateway)

    hub = sub.add_parser("hub", help="run a classroom hub: relays bands to their owners, reads nothing")
    from hugapp.hubcli import add_arguments as add_hub_arguments

    add_hub_arguments(hub)
    hub.set_defaults(func=_hub)

    app = sub.add_parser("app", help="open the companion app (--sim: with a virtual band in its own window)")
    from hugapp.ui.launch import add_arguments as add_app_arguments

    add_app_arguments(app)
    app.set_defaults(func=_app)

    broker = sub.add_parser("broker", help="run the embedded MQTT broker for one household")
    broker.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    broker.add_argument("--port", type=int, default=1883)
    broker.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="instead, run an N-node NATS cluster on loopback (nats-server) and print its --broker value",
    )
    broker.set_defaults(func=_broker)

    band = sub.add_parser("band", help="the band firmware: simulate, build, flash")
    band_sub = band.add_subparsers(dest="band_command", required=True)
    boards = bandtools.board_names()
    default_board = "xiao_esp32c3"

    sim = band_sub.add_parser("sim", help="run a virtual band (the real firmware on a simulated board)")
    sim.add_argument("--board", default=default_board, choices=boards or None)
    sim.add_argument("--airspace", help="HOST:PORT of a running airspace (default: start one)")
    sim.add_argument("--state", help="folder for the band's flash (default: a folder under ~/.cache)")
    sim.add_argument("--address", help="the band's identity (factory) address, e.g. C0:FF:EE:00:00:01")
    sim.set_defaults(func=_band_sim)

    build = band_sub.add_parser("build", help="compile the firmware with mpy-cross into a deployable folder")
    build.add_argument("--board", default=default_board, choices=boards or None)
    build.add_argument("--out", help="output folder (default: build/BOARD)")
    build.set_defaults(func=_band_build)

    flash = band_sub.add_parser("flash", help="build, copy to a band over USB with mpremote, and reset it")
    flash.add_argument("--board", default=default_board, choices=boards or None)
    flash.add_argument("--port", required=True, help="serial port of the band, e.g. /dev/ttyACM0")
    flash.add_argument("--out", help="build folder (default: build/BOARD)")
    flash.set_defaults(func=_band_flash)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except bandtools.BandToolError as exc:
        print(f"hugbutton: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
