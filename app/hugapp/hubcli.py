"""`hugbutton hub`: the classroom hub's command (see hugapp.core.hub).

hugbutton hub --data DIR --broker URL enrol       show a code; a parent types it to enrol a band
hugbutton hub --data DIR --broker URL run         serve the enrolled bands until stopped
hugbutton hub --data DIR --broker URL ui          the same, with the hub's own screen (enrol, status, bands)
hugbutton hub --data DIR list | remove ID         the enrolled bands (ids only: nothing else is known)
hugbutton hub --data DIR status                   the running hub: bands enrolled and heard, links, queue
hugbutton hub --data DIR name [NAME]              what parents see the hub called ("Class 2")
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path

import aiomqtt

from hugapp.core.bandlink import BleConfig
from hugapp.core.envelope import RelayError
from hugapp.core.hub import MAX_HUB_NAME, HubStore, enrol_once, run_hub
from hugapp.core.relay import parse_broker_urls
from hugapp.hubwords import status_words


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder for the hub's enrolments")
    parser.add_argument("--broker", help="the broker, e.g. mqtt://broker.example:1883 (enrol, run, ui)")
    parser.add_argument("--airspace", help="use the simulated radio at HOST:PORT instead of Bluetooth")
    sub = parser.add_subparsers(dest="hub_command", required=True)
    sub.add_parser("enrol", help="show a code (and QR text) a parent types to have this hub serve a band")
    sub.add_parser("run", help="serve the enrolled bands until stopped")
    sub.add_parser("ui", help="serve them with the hub's own screen: its name, status, enrolment, bands")
    sub.add_parser("list", help="the enrolled bands' ids")
    sub.add_parser("status", help="the running hub: bands enrolled and heard, links in use, its queue")
    remove = sub.add_parser("remove", help="stop serving a band")
    remove.add_argument("enrolment")
    name = sub.add_parser("name", help='show or set what parents see this hub called, e.g. "Class 2"')
    name.add_argument("name", nargs="?", help=f"at most {MAX_HUB_NAME} characters")


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


def ui_command(folder: Path, broker_url: str, config: BleConfig, app_data: Path | None = None) -> int:
    """The hub with its own screen (``hugapp.ui.hubscreen``), on this computer's display; also a
    phone's hub mode (``app_data``: the app's data folder, see ``hugapp.ui.phonemode``)."""
    from hugapp.ui.platform import window_problem

    problem = window_problem()
    if problem:
        print(f"hugbutton hub ui: {problem}; `hugbutton hub run` serves without one", file=sys.stderr)
        return 2
    os.environ.setdefault("KCFG_KIVY_LOG_LEVEL", "warning")  # Kivy's start-up chatter off
    from hugapp.ui.hubscreen import run_hub_ui

    try:
        asyncio.run(run_hub_ui(folder, broker_url, config, app_data=app_data))
    except RelayError as exc:
        print(f"hugbutton hub: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
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
    if command == "ui":
        return ui_command(folder, str(args.broker), config or BleConfig())
    try:
        if command == "enrol":
            return asyncio.run(enrol_once(folder, str(args.broker)))
        asyncio.run(run_hub(folder, str(args.broker), config or BleConfig()))
    except RelayError as exc:
        print(f"hugbutton hub: {exc}", file=sys.stderr)
        return 2
    except (aiomqtt.MqttError, OSError) as exc:
        where = ", ".join(f"{a.host}:{a.port}" for a in parse_broker_urls(str(args.broker)))  # no password
        print(f"hugbutton hub {command}: can't reach the broker ({where}): {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
