"""`hugbutton demo`: one school day of Mia (at school) and Mum (at work), for real.

Everything runs on this machine: the embedded broker (or --broker), the simulated radio, two virtual
bands running the real firmware in their own processes, and two companions (the app's core) that
talk to their bands through bleak and to each other through the broker, sealed end to end.
Latency is measured from the press on one band to the motor starting on the other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hugapp.core.hugs import Receipt
from hugapp.core.hugstore import HistoryEntry
from hugapp.core.schedule import DayType, QuietMode, QuietWindow, Schedule
from hugapp.dev.world import NO_QUIET_HOURS, PAIR_HOLD_MS, TAP_MS, Person, open_world
from hugsim.airspace import AirspaceControl, AirspaceTimeoutError

STEP_TIMEOUT_S = 60.0


class DemoError(Exception):
    """A step of the scripted day did not happen in time."""


class Day:
    def __init__(self, control: AirspaceControl, quiet: bool) -> None:
        self.control = control
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.changed = asyncio.Event()
        self.latencies: list[float] = []
        self.sent = 0

    def say(self, clock: str, text: str) -> None:
        if not self.quiet:
            print(f"  {time.monotonic() - self.t0:6.1f}s  {clock:>5}  {text}", flush=True)

    async def until(self, what: str, predicate: Callable[[], bool], timeout: float = STEP_TIMEOUT_S) -> None:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self.changed.clear()
                    if predicate():
                        return
                    await self.changed.wait()
        except TimeoutError:
            raise DemoError(f"waited {timeout:.0f} s for {what}") from None

    async def press(self, person: Person, ms: int = TAP_MS) -> float:
        """Press a band's heart for `ms`; returns the airspace time it was let go (the gesture ends)."""
        _, t_release = await self.control.hold(person.band.address, ms)
        self.sent += 1
        return t_release

    async def buzz_after(self, person: Person, since_ms: float) -> float:
        """Wait for the band's motor to start after `since_ms`; record and return the latency."""
        try:
            entry = await self.control.wait_output(
                person.band.address,
                "motor",
                lambda v: float(v) > 0,
                since_ms=since_ms,
                timeout=STEP_TIMEOUT_S,
            )
        except AirspaceTimeoutError:
            raise DemoError(f"{person.name}'s band did not buzz within {STEP_TIMEOUT_S:.0f} s") from None
        latency = entry.t_ms - since_ms
        self.latencies.append(latency)
        return latency


def _history(p: Person, direction: str) -> list[HistoryEntry]:
    return [h for h in p.phone.hugstore.history(10_000) if h.direction == direction]


@contextlib.asynccontextmanager
async def world(
    broker_url: str | None, tmp: Path, day_changed: Callable[[], None]
) -> AsyncGenerator[tuple[AirspaceControl, dict[str, Person], str]]:
    """Mia and Mum, each with a band and a phone, in the simulated world (hugapp.dev.world)."""
    async with open_world(tmp, broker_url) as w:
        people = {name: await w.person(name, day_changed) for name in ("Mia", "Mum")}
        assert w.broker_url is not None
        yield w.control, people, w.broker_url


async def _setup(day: Day, people: dict[str, Person]) -> None:
    mia, mum = people["Mia"], people["Mum"]
    for p in (mia, mum):
        day.say("07:40", f"{p.name} holds the heart of her new band for 5 seconds: the pairing window opens")
        await day.control.hold(p.band.address, PAIR_HOLD_MS)
        on_air = await day.control.air_address(p.band.address)  # what the phone's scan shows
        p.band_id = (await p.phone.pair_band(on_air, f"{p.name}'s band")).band_id
        day.say(
            "07:41", f"{p.name}'s phone pairs it (band {p.band_id}, on the air at {on_air}) with a fresh key"
        )
    offer = await mum.phone.offer_link()
    day.say("07:45", f"Mum's phone shows a link code {offer.code}; Mia's phone types it (SPAKE2, sealed)")
    await mia.phone.join_link(offer.code)
    await offer.wait()
    for p in (mia, mum):
        await day.until(f"{p.name}'s band to connect", lambda p=p: p.phone.connected(p.band_id))
        relay = p.phone.relay
        assert relay is not None
        await asyncio.wait_for(relay.connected.wait(), STEP_TIMEOUT_S)
    await asyncio.sleep(1.5)  # the pairing buzzes fade; hands off the hearts
    day.say("07:50", "both bands connected, both phones online")


async def scripted_day(day: Day, people: dict[str, Person]) -> None:
    mia, mum = people["Mia"], people["Mum"]
    await _setup(day, people)

    await day.control.hold(mia.band.address, TAP_MS)
    await asyncio.sleep(0.15)
    t = await day.press(mia)  # a second tap: one hug of two taps
    day.say("10:05", "at school, Mia taps her heart twice")
    latency = await day.buzz_after(mum, t)
    day.say("10:05", f"Mum's band buzzes {latency:.0f} ms after Mia's last tap (0.4 s of it is the band")
    day.say("", "waiting to be sure no third tap comes); it plays twice, with Mia's signature first")
    await day.until(
        "the felt receipt",
        lambda: bool(_history(mia, "out")) and _history(mia, "out")[0].receipt is Receipt.FELT,
    )
    day.say("10:05", "Mia's phone: delivered, then felt; Mia's band gives a small tick")

    t = await day.press(mum, 1200)
    day.say("10:06", "Mum squeezes her heart for 1.2 s within 10 s of feeling it: a hug back")
    day.say("", "(latencies run from the end of the press, when the band knows what it was)")
    latency = await day.buzz_after(mia, t)
    back = _history(mia, "in")
    day.say(
        "10:06",
        f"Mia's band plays the hug-back pattern {latency:.0f} ms after Mum's squeeze"
        + (" (marked as an answer)" if back and back[0].hug.hug_back_of else ""),
    )

    await asyncio.sleep(11)
    t = await day.press(mia, 2200)
    day.say("12:30", "at lunch Mia squeezes for 2.2 s: a big hug")
    latency = await day.buzz_after(mum, t)
    day.say("12:30", f"Mum feels a big hug, stronger for the longer squeeze, after {latency:.0f} ms")

    await asyncio.sleep(1.0)
    await day.control.out_of_range(mia.band.address)
    day.say("14:10", "Mia's band drops out of range of her phone (bag in the locker)")
    t = await day.press(mia)
    day.say("14:10", "she taps anyway: the band keeps the press in its flash outbox")
    await asyncio.sleep(3.0)
    await day.control.in_range(mia.band.address)
    latency = await day.buzz_after(mum, t)
    day.say(
        "14:11", f"back in range: the press goes out and Mum feels it, {latency / 1000:.1f} s after the tap"
    )

    now = datetime.now().astimezone()
    start = (now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    night = Schedule(windows={d: (QuietWindow(start, end, QuietMode.HOLD),) for d in DayType})
    mum.phone.router.set_schedule(night)
    await asyncio.sleep(1.5)
    before = len(await day.control.timeline(mum.band.address))
    for _ in range(3):
        await day.press(mia)
        await asyncio.sleep(0.6)
    day.say("21:30", "Mum's quiet hours have begun; Mia sends three goodnight hugs")
    await day.until("the held hugs to reach Mum's phone", lambda: len(_history(mum, "in")) >= 6)
    await asyncio.sleep(2.0)
    buzzed = [
        e for e in (await day.control.timeline(mum.band.address))[before:] if e.kind == "motor" and e.value
    ]
    day.say("21:31", f"Mum's phone holds them: {len(buzzed)} buzzes at night")
    t_release = await day.control.now()
    mum.phone.router.set_schedule(NO_QUIET_HOURS)
    latency = await day.buzz_after(mum, t_release)
    day.say("07:00", "next morning Mum's band plays them together, with their count: 3 hugs")
    if latency > 2000:
        day.say("", f"(after {latency / 1000:.0f} s: this day is squeezed into a minute, and the storm rule")
        day.say("", "lets a band buzz at most 3 times a minute)")
    day.latencies.pop()  # a held hug's wait is the night, not latency


async def many_hugs(day: Day, people: dict[str, Person], n: int) -> None:
    """N presses on Mia's band, as fast as taps can be told apart; each hug's latency runs from its
    release to the start of the buzz that played it on Mum's band (storms fold several into one)."""
    mia, mum = people["Mia"], people["Mum"]
    await _setup(day, people)
    offset_ms = await day.control.now() - time.time() * 1000  # airspace ms = wall ms + offset
    releases: list[float] = []
    for i in range(n):
        releases.append(await day.press(mia))
        await asyncio.sleep(0.45)  # longer than the band's multi-tap gap: separate presses
        if i % 50 == 49:
            day.say("", f"{i + 1} presses sent")
    await day.until("every press to reach Mum", lambda: _presses_in(mum) >= n, 300)
    await day.until("every hug to be felt", lambda: _felt(mum) >= len(_history(mum, "in")), 300)
    motor_on = [e.t_ms for e in await day.control.timeline(mum.band.address) if e.kind == "motor" and e.value]
    sent_at = mum.phone.hugstore.sent_times(mum.band_id)
    out = sorted(_history(mia, "out"), key=lambda h: h.created_at)
    for release, hug in zip(releases, out, strict=False):
        play_ms = sent_at.get(hug.hug_id, 0.0) * 1000 + offset_ms
        start = next((t for t in motor_on if t >= play_ms - 5), None)
        if start is not None:
            day.latencies.append(start - release)


def _presses_in(p: Person) -> int:
    """Presses received: taps closer together than the band's multi-tap gap arrive as one hug."""
    return sum(h.hug.count for h in _history(p, "in"))


def _felt(p: Person) -> int:
    return p.phone.hugstore.felt_hug_count()


def _summary(day: Day, people: dict[str, Person], presses_sent: int | None = None) -> dict[str, Any]:
    """Hugs Mia sent and Mum received; with `presses_sent` (the --hugs run), counted in presses."""
    mia, mum = people["Mia"], people["Mum"]
    received = _history(mum, "in")
    ids = [h.hug_id for h in received]
    presses = sum(h.hug.count for h in received)
    felt_rows = _felt(mum)
    sent_by_mia = len(_history(mia, "out"))
    lat = sorted(day.latencies)

    def pct(q: float) -> float | None:
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1)

    buzzes = mum.phone.hugstore.felt_buzzes(mum.band_id)
    latency = {
        "p50": pct(0.5),
        "p99": pct(0.99),
        "samples": len(lat),
        "mean": round(statistics.fmean(lat), 1) if lat else None,
    }
    if presses_sent is not None:
        felt_here = mum.phone.hugstore.felt_hug_ids()
        felt_presses = sum(h.hug.count for h in received if h.hug_id in felt_here)
        return {
            "sent": presses_sent,
            "received": presses,
            "felt": felt_presses,
            "lost": max(0, presses_sent - presses),
            "duplicates": len(ids) - len(set(ids)) + max(0, presses - presses_sent),
            "hugs": len(set(ids)),
            "buzzes": int(buzzes),
            "latency_ms": latency,
        }
    return {
        "sent": sent_by_mia,
        "buzzes": int(buzzes),
        "received": len(set(ids)),
        "presses_received": presses,
        "felt": int(felt_rows),
        "lost": max(0, sent_by_mia - len(set(ids))),
        "duplicates": len(ids) - len(set(ids)),
        "latency_ms": latency,
    }


async def _main(args: argparse.Namespace) -> int:
    day_ref: list[Day] = []
    with tempfile.TemporaryDirectory(prefix="hugbutton-demo-") as tmp:
        async with world(args.broker, Path(tmp), lambda: day_ref[0].changed.set() if day_ref else None) as (
            control,
            people,
            broker_url,
        ):
            day = Day(control, quiet=args.json)
            day_ref.append(day)
            if not args.json:
                print(f"Hug Button demo: broker {broker_url}, two virtual bands, two phones\n", flush=True)
            if args.hugs:
                await many_hugs(day, people, args.hugs)
            elif getattr(args, "ui", False):  # the same day, both phones' apps on screen
                from hugapp.dev import demo_ui

                await demo_ui.run({n: p.phone for n, p in people.items()}, scripted_day(day, people))
            else:
                await scripted_day(day, people)
            await day.until(
                "every hug to be felt",
                lambda: _felt(people["Mum"]) >= len(_history(people["Mum"], "in")),
                120,
            )
            await asyncio.sleep(2.0)  # a duplicate would show up now
            summary = _summary(day, people, args.hugs or None)
            bands = [p.band for p in people.values()]
            summary["band_runtime"] = bands[0].runtime
            summary["band_heap_peak_bytes"] = max(b.heap_peak for b in bands)  # 0: not measured
    if args.json:
        print(json.dumps(summary))
    else:
        lat = summary["latency_ms"]
        print(
            f"\n{summary['sent']} hugs sent by Mia, {summary['received']} received by Mum, "
            f"{summary['felt']} felt, {summary['lost']} lost, {summary['duplicates']} duplicates; "
            f"press -> partner motor: p50 {lat['p50']} ms, p99 {lat['p99']} ms"
        )
    return 0 if summary["lost"] == 0 and summary["duplicates"] == 0 else 1


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        return asyncio.run(_main(args))
    except DemoError as exc:
        print(f"hugbutton demo: {exc}", file=sys.stderr)
        return 1
