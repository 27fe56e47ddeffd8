"""`hugbutton hub`: the classroom hub's command (see hugapp.core.hub).

hugbutton hub --data DIR --broker URL enrol       show a code; a parent types it to enrol a band
hugbutton hub --data DIR --broker URL run         serve the enrolled bands until stopped
hugbutton hub --data DIR list | remove ID         the enrolled bands (ids only: nothing else is known)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from hugapp.core.bandlink import BleConfig
from hugapp.core.envelope import RelayError
from hugapp.core.hub import HubStore, enrol_once, run_hub


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder for the hub's enrolments")
    parser.add_argument("--broker", help="the broker, e.g. mqtt://broker.example:1883 (enrol and run)")
    parser.add_argument("--airspace", help="use the simulated radio at HOST:PORT instead of Bluetooth")
    sub = parser.add_subparsers(dest="hub_command", required=True)
    sub.add_parser("enrol", help="show a code (and QR text) a parent types to have this hub serve a band")
    sub.add_parser("run", help="serve the enrolled bands until stopped")
    sub.add_parser("list", help="the enrolled bands' ids")
    remove = sub.add_parser("remove", help="stop serving a band")
    remove.add_argument("enrolment")


def main(args: argparse.Namespace, config: BleConfig | None = None) -> int:
    folder = Path(args.data)
    command = str(args.hub_command)
    if command in ("list", "remove"):
        store = HubStore(folder)
        try:
            if command == "list":
                for e in store.enrolments():
                    print(e.enrolment_id)
                return 0
            if not store.remove(str(args.enrolment)):
                print(f"hugbutton hub: no band {args.enrolment} is enrolled here", file=sys.stderr)
                return 1
            return 0
        finally:
            store.close()
    if not args.broker:
        print(f"hugbutton hub {command}: --broker is required", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        if command == "enrol":
            return asyncio.run(enrol_once(folder, str(args.broker)))
        asyncio.run(run_hub(folder, str(args.broker), config or BleConfig()))
    except RelayError as exc:
        print(f"hugbutton hub: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
