"""`hugbutton gateway`: the companion without a screen (a Raspberry Pi or laptop at home)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hugapp.core import bandlink, linking
from hugapp.core.bandlink import BleConfig
from hugapp.core.companion import Companion
from hugapp.core.envelope import acl_lines, presence_id
from hugapp.core.store import Store, StoreError, default_path

log = logging.getLogger("hugapp.gateway")

# Always on and on mains power: a band away (served by a co-owner, or out of range) is looked for at
# least this often, so the gateway takes a co-owned band over soon after the phone goes.
BAND_BACKOFF_MAX_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        help="the family broker, e.g. mqtt://127.0.0.1:1883, or a cluster's nodes separated by commas "
        "(mqtt://a:1883,mqtt://b:1883,mqtt://c:1883; default: none)",
    )
    parser.add_argument("--data", help=f"folder for this companion's data (default: {default_path().parent})")
    parser.add_argument(
        "--name", default="Home", help="this companion's name in its circles (first run only)"
    )
    parser.add_argument("--airspace", help="use the simulated radio at HOST:PORT instead of Bluetooth")
    sub = parser.add_subparsers(dest="gateway_command")
    sub.add_parser("run", help="serve paired bands and circles until stopped (the default)")
    sub.add_parser("scan", help="list bands in range")
    pair = sub.add_parser("pair", help="pair a band whose heart is being held for 5 s")
    pair.add_argument("address")
    pair.add_argument("--band-name")
    pair.add_argument(
        "--wearer",
        metavar="NAME",
        help="whose band it is: a person without a phone (default: this gateway's)",
    )
    sub.add_parser("offer", help="show a code to link another phone, and wait for it")
    join = sub.add_parser("join", help="join another phone's circle with its code")
    join.add_argument("code")
    school = sub.add_parser("school", help="have a classroom hub serve a band: type the code the hub shows")
    school.add_argument("code")
    school.add_argument("--band", metavar="ID", help="the band's id (default: this gateway's only band)")
    sub.add_parser("status", help="bands, circles and the last hugs")
    sub.add_parser("account", help="this companion's broker user name and its lines for deploy/'s ACL")


def _store(args: argparse.Namespace) -> Store:
    return Store(Path(args.data) / "companion.sqlite3" if args.data else None)


async def _run(args: argparse.Namespace, ble: BleConfig) -> int:
    store = _store(args)
    companion = Companion(store, ble, args.broker, name=args.name, band_backoff_max=BAND_BACKOFF_MAX_S)
    command = args.gateway_command or "run"
    if command == "account":
        me = companion.me
        print(f"broker user name: {me.mailbox}; presence topic id: {presence_id(me.presence_key)}")
        print("NATS (deploy/nats/companions.py input): <user name> <presence topic id> <password>")
        print("Mosquitto: give the user a password (mosquitto_passwd) and append to the ACL file:")
        print(acl_lines(me.mailbox, me.presence_key), end="")
        return 0
    if command == "status":
        names = {m.member_id: m.name for m in companion.members()} | {
            companion.me.member_id: companion.me.name
        }
        for band in store.bands():
            owners = ", ".join(names.get(o.member_id, o.member_id[:8]) for o in store.owners(band.band_id))
            wearer = names.get(band.wearer or companion.me.member_id, "?")
            shared = f"  co-owned with {owners}" if owners else ""
            print(f"band   {band.band_id}  {band.name}  worn by {wearer}  battery {band.battery}%{shared}")
        for member in companion.members():
            print(f"member {member.name}  signature {member.signature}")
        for entry in companion.router.history(20):
            arrow = "->" if entry.direction == "out" else "<-"
            state = "missed" if entry.missed else entry.receipt.name.lower()
            print(f"hug    {arrow} {entry.hug_id[:8]}  {state}")
        return 0
    if command == "scan":
        print("scanning for bands (5 s)...", flush=True)
        for band in await companion.scan(
            5.0, lambda b: print(f"  heard {b.name} {b.address} {b.rssi} dBm", flush=True)
        ):
            state = (
                "pairing window open" if band.pairing_open else ("paired" if band.paired else "not paired")
            )
            print(f"{band.address}  {band.name}  {band.rssi} dBm  {state}")
        return 0
    if command == "pair":
        print(f"pairing {args.address}: hold the band's heart for 5 seconds until it buzzes...", flush=True)
        found = await bandlink.pair_band(companion.ble, store, args.address, args.band_name)
        if args.wearer:  # a person without a phone: a member of the circles once this gateway is in one
            store.set_wearer(found.band_id, companion.coowners.add_wearer(args.wearer))
        print(
            f"paired: band {found.band_id}"
            + (f" as {args.wearer}'s band" if args.wearer else "")
            + f"; it buzzed {found.code} times after a wave "
            "(if it did not, another device took the pairing: hold its heart 10 s and pair again)"
        )
        return 0
    async with companion:
        if command == "offer":
            offer = await companion.offer_link()
            print(f"link code: {offer.code}  (valid 3 minutes, once)", flush=True)
            result = await offer.wait()
            print(f"linked with {result.member.name}")
            return 0
        if command == "join":
            result = await companion.join_link(args.code)
            print(f"joined {result.member.name}'s circle")
            return 0
        if command == "school":
            band_id = args.band or _only_band(store)
            enrolment = await companion.enrol_at_hub(args.code, band_id)
            print(f"band {band_id} enrolled at the hub ({enrolment}): the hub carries it to this gateway")
            return 0
        print(
            f"gateway {companion.me.name} running: {len(store.bands())} band(s), "
            f"broker {args.broker or 'none (local hugs only)'}",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    return 0


def _only_band(store: Store) -> str:
    bands = store.bands()
    if len(bands) != 1:
        raise bandlink.BandLinkError(
            f"this gateway has {len(bands)} bands: say which with --band "
            f"({', '.join(b.band_id for b in bands) or 'pair one first'})"
        )
    return bands[0].band_id


def run_command(command: Coroutine[Any, Any, int]) -> int:
    """Run a companion command: log to stderr, and turn the core's errors into a message and exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("bleak").setLevel(logging.WARNING)
    try:
        return asyncio.run(command)
    except (bandlink.BandLinkError, linking.LinkError, StoreError) as exc:
        print(f"hugbutton: {exc}", file=sys.stderr)
        return 2


def main(args: argparse.Namespace, ble: BleConfig | None = None) -> int:
    """Run a gateway command on ``ble`` (default: this computer's Bluetooth)."""
    return run_command(_run(args, ble or BleConfig()))
