"""`hugbutton hub`: the classroom hub's command (see hugapp.core.hub).

hugbutton hub --data DIR --broker URL enrol       show a code; a parent types it to enrol a band
hugbutton hub --data DIR --broker URL run         serve the enrolled bands until stopped
hugbutton hub --data DIR list | remove ID         the enrolled bands (ids only: nothing else is known)
hugbutton hub --data DIR status                   the running hub: bands enrolled and heard, links, queue
hugbutton hub --data DIR name [NAME]              what parents see the hub called ("Class 2")
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

from hugapp.core.bandlink import BleConfig
from hugapp.core.envelope import RelayError
from hugapp.core.hub import MAX_HUB_NAME, RELOAD_S, HubStore, enrol_once, run_hub


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder for the hub's enrolments")
    parser.add_argument("--broker", help="the broker, e.g. mqtt://broker.example:1883 (enrol and run)")
    parser.add_argument("--airspace", help="use the simulated radio at HOST:PORT instead of Bluetooth")
    sub = parser.add_subparsers(dest="hub_command", required=True)
    sub.add_parser("enrol", help="show a code (and QR text) a parent types to have this hub serve a band")
    sub.add_parser("run", help="serve the enrolled bands until stopped")
    sub.add_parser("list", help="the enrolled bands' ids")
    sub.add_parser("status", help="the running hub: bands enrolled and heard, links in use, its queue")
    remove = sub.add_parser("remove", help="stop serving a band")
    remove.add_argument("enrolment")
    name = sub.add_parser("name", help='show or set what parents see this hub called, e.g. "Class 2"')
    name.add_argument("name", nargs="?", help=f"at most {MAX_HUB_NAME} characters")


def status_words(status: dict[str, Any] | None, now: float) -> str:
    """The hub's status file in words; a hub that has not written it lately is not running."""
    if status is None:
        return "not running here yet (no status written)"
    try:
        age = now - float(status["at"])
        broker = "broker online" if status["online"] else "broker NOT reachable"
        line = (
            f"{status['enrolled']} band(s) enrolled, {status['heard']} heard in the last minute, "
            f"{status['links']} link(s) in use, {status['queue']} message(s) waiting; "
            f"{status['dropped']} dropped, {status['rejected']} rejected"
        )
    except (KeyError, TypeError, ValueError):
        return "the status file is unreadable: is this a hub's data folder?"
    if age > 3 * RELOAD_S:
        return f"not running (last seen {int(age)} s ago): {line}"
    return f"running, {broker}: {line}"


def name_command(store: HubStore, name: str | None) -> int:
    """Show the hub's name, or set it (bands enrolled from now on are told it)."""
    if name is not None:
        try:
            store.set_name(name)
        except ValueError as exc:
            print(f"hugbutton hub name: {exc}", file=sys.stderr)
            return 2
    print(store.name or '(no name: parents see "the class hub")')
    return 0


def main(args: argparse.Namespace, config: BleConfig | None = None) -> int:
    folder = Path(args.data)
    command = str(args.hub_command)
    if command in ("list", "remove", "status", "name"):
        store = HubStore(folder)
        try:
            if command == "name":
                return name_command(store, args.name)
            if command == "status":
                print(status_words(store.read_status(), time.time()))
                return 0
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
