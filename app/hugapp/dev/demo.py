"""`hugbutton demo`: one day of Mia (who has no phone), Mum and Dad (at work), for real.

Everything runs on this machine: the embedded broker (or --broker), the simulated radio, virtual bands
running the real firmware in their own processes, and companions (the app's core): Mum's phone owning
Mum's band and Mia's, Dad's phone with his, and the family's home gateway co-owning Mia's band. They
talk to the bands through bleak and to each other through the broker, sealed end to end. Mia spends
the school day at school: Mum enrols her band at the class hub, which carries it to Mum's phone at
work; after school the band comes home to its owners. ``--class N`` puts N children's bands on the
hub (Mia and N-1 classmates, each of another family). Latency is measured from the press on one band
to the motor starting on another.
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

from hugapp.core.bandlink import LinkState
from hugapp.core.companion import Companion
from hugapp.core.hugs import Receipt
from hugapp.core.hugstore import HistoryEntry
from hugapp.core.schedule import DayType, QuietMode, QuietWindow, Schedule
from hugapp.dev.school import HUB_CENTRAL, School
from hugapp.dev.world import NO_QUIET_HOURS, TAP_MS, Family, Person, World, open_world
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
        self.burst: dict[str, Any] = {}  # the class-wide burst's figures, when there is a class

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


def _from_mia(c: Companion, mia: Person) -> list[HistoryEntry]:
    """Hugs from Mia in ``c``'s history (routed by it, or received from her band's other owner)."""
    return [h for h in c.hugstore.history(10_000) if h.hug.sender == mia.member_id]


def _sent_by_mia(family: Family) -> list[HistoryEntry]:
    """Mia's hugs as her band's owners routed them (each once, whichever owner took the press)."""
    seen: dict[str, HistoryEntry] = {}
    for c in (family.mum.phone, family.home):
        for h in c.hugstore.history(10_000):
            if h.direction == "out" and h.hug.sender == family.mia.member_id:
                seen.setdefault(h.hug_id, h)
    return sorted(seen.values(), key=lambda h: h.hug.pressed_at)


def _to_mum(family: Family) -> list[HistoryEntry]:
    """Mia's hugs as Mum's phone has them: each one plays on Mum's band."""
    return _from_mia(family.mum.phone, family.mia)


def _felt_by_mum(family: Family) -> set[str]:
    felt = family.mum.phone.hugstore.felt_hug_ids()
    return {h.hug_id for h in _to_mum(family) if h.hug_id in felt}


def _serving(family: Family) -> str:
    band = family.mia.band_id
    if family.home.connected(band):
        return "the home gateway"
    if _via_hub(family):
        return "Mum's phone, through the class hub"
    return "Mum's phone" if family.mum.phone.connected(band) else "nobody"


def _via_hub(family: Family) -> bool:
    """Mum's phone reaches Mia's band through the class hub (linked now, or parked there while idle)."""
    link = family.mum.phone.links.get(family.mia.band_id)
    return link is not None and (link.via == "hub" or link.state is LinkState.PARKED)


def _presses_via_hub(family: Family) -> int:
    """Mia's presses that reached her band's owners through the hub (counted by their band links)."""
    links = [c.links.get(family.mia.band_id) for c in (family.mum.phone, family.home)]
    return sum(link.stats.presses_relayed for link in links if link is not None)


@contextlib.asynccontextmanager
async def world(
    broker_url: str | None, tmp: Path, day_changed: Callable[[], None]
) -> AsyncGenerator[tuple[World, str]]:
    """The simulated world (hugapp.dev.world) with its broker."""
    async with open_world(tmp, broker_url) as w:
        assert w.broker_url is not None
        yield w, w.broker_url


async def _setup(
    day: Day, w: World, school: School, class_size: int, on_change: Callable[[], None]
) -> Family:
    family = await w.family(on_change, say=day.say)
    await w.online_family(family)
    day.say("07:50", "every band connected, every phone and the gateway online")
    if class_size > 1:
        day.say("07:55", f"at school, the parents of {class_size - 1} other children of Mia's class pair")
        await school.add_classmates(class_size - 1)
        day.say("", "their children's bands and enrol them at the class hub (no child has a phone)")
    code = await school.enrol(family.mum.phone, family.mia.band_id)
    day.say("08:20", f"at the classroom door the hub shows a code, {code}; Mum types it in her app")
    day.say("", "(Bands -> At school): the hub will carry Mia's band to Mum's phone, and learns only")
    day.say("", "which band to serve, never its key")
    for central in ("mum-phone", "home-phone"):
        await day.control.out_of_range(family.mia.band.address, central=central)
    day.say("08:30", "Mum and Dad leave for work with their phones and bands; Mia stays at school,")
    await day.until("Mum's phone to reach Mia's band through the hub", lambda: _via_hub(family))
    day.say("", "in range of the class hub only: Mum's phone at work reaches her band through it")
    return family


async def class_burst(day: Day, family: Family, school: School) -> None:
    """ "Everyone, send a hug home!": every classmate taps within 10 s; each press reaches its family."""
    n = len(school.classmates)
    before = school.presses_home()
    first = min((await school.burst(within_s=10.0)).values())
    day.say("11:00", f'the teacher says "everyone, send a hug home!": {n} classmates tap within 10 s')
    await day.until("each classmate's press to reach home", lambda: school.presses_home() >= before + n, 120)
    last_s = round((await day.control.now() - first) / 1000, 1)
    day.burst = {"sent": n, "received": school.presses_home() - before, "last_s": last_s}
    day.say("11:00", f"all {n} reached their families through the hub, the last {last_s} s after")
    day.say("", "the first tap (the hub's radio holds only a few links at once: it takes turns)")


async def scripted_day(day: Day, family: Family, school: School) -> None:
    mia, mum, dad, home = family.mia, family.mum, family.dad, family.home

    await day.control.hold(mia.band.address, TAP_MS)
    await asyncio.sleep(0.15)
    t = await day.press(mia)  # a second tap: one hug of two taps
    day.say("10:05", "at school, Mia taps her heart twice")
    latency = await day.buzz_after(mum, t)
    day.say("10:05", f"Mum's band buzzes {latency:.0f} ms after Mia's last tap (0.4 s of it is the band")
    day.say("", "waiting to be sure no third tap comes); it plays twice, with Mia's signature first")
    latency = await day.buzz_after(dad, t)
    day.say("10:05", f"Dad's band too, {latency:.0f} ms after the tap")
    day.latencies.pop()  # the summary's latency is Mum's band's

    def first_felt() -> bool:
        sent = _sent_by_mia(family)
        return bool(sent) and all(
            h.receipt is Receipt.FELT
            for c in (mum.phone, home)
            for h in c.hugstore.history(10_000)
            if h.hug_id == sent[0].hug_id and h.direction == "out"
        )

    await day.until("the felt receipt", first_felt)
    day.say("10:05", f"{_serving(family)}: delivered, then felt; Mia's band gives a small tick")
    if school.classmates:
        await class_burst(day, family, school)

    t = await day.press(mum, 1200)
    day.say("10:06", "Mum squeezes her heart for 1.2 s within 10 s of feeling it: a hug back")
    day.say("", "(latencies run from the end of the press, when the band knows what it was)")
    latency = await day.buzz_after(mia, t)
    back = [h for h in home.hugstore.history(10) if h.hug.sender == mum.phone.me.member_id]
    day.say(
        "10:06",
        f"Mia's band plays the hug-back pattern {latency:.0f} ms after Mum's squeeze"
        + (" (marked as an answer)" if back and back[0].hug.hug_back_of else ""),
    )
    day.say("", "(Mum's phone at work sent it through the class hub)")

    await asyncio.sleep(11)
    t = await day.press(mia, 2200)
    day.say("12:30", "at lunch Mia squeezes for 2.2 s: a big hug")
    latency = await day.buzz_after(mum, t)
    day.say("12:30", f"Mum feels a big hug, stronger for the longer squeeze, after {latency:.0f} ms")

    await asyncio.sleep(1.0)
    await day.control.out_of_range(mia.band.address)
    day.say("14:10", "Mia plays at the far end of the playground, out of the hub's range")
    t = await day.press(mia)
    day.say("14:10", "she taps anyway: the band keeps the press in its flash outbox")
    await asyncio.sleep(3.0)
    await day.control.in_range(mia.band.address, central=HUB_CENTRAL)
    latency = await day.buzz_after(mum, t)
    day.say(
        "14:11", f"back in range: the press goes out and Mum feels it, {latency / 1000:.1f} s after the tap"
    )

    await day.control.in_range(mia.band.address, central="home-phone")
    await day.control.out_of_range(mia.band.address, central=HUB_CENTRAL)
    day.say("15:30", "after school Mia comes home: her band leaves the hub's range for the gateway's")
    await day.until("the gateway to serve Mia's band", lambda: home.connected(mia.band_id))
    day.say("15:31", "the home gateway serves it again")

    await day.control.in_range(mia.band.address, central="mum-phone")
    await day.control.out_of_range(mia.band.address, central="home-phone")
    day.say("17:30", "Mum is home; the gateway is unplugged for an update")
    await day.until("Mum's phone to serve Mia's band", lambda: mum.phone.connected(mia.band_id))
    day.say("17:31", "Mum's phone takes Mia's band over")
    t = await day.press(dad, 1200)
    day.say("17:45", "Dad squeezes his heart at work")
    latency = await day.buzz_after(mia, t)
    day.say("17:45", f"Mia's band plays Dad's hug {latency:.0f} ms later, through Mum's phone now")
    await day.control.in_range(mia.band.address, central="home-phone")

    now = datetime.now().astimezone()
    start = (now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    night = Schedule(windows={d: (QuietWindow(start, end, QuietMode.HOLD),) for d in DayType})
    mum.phone.router.set_schedule(night)
    dad.phone.router.set_schedule(night)
    await asyncio.sleep(1.5)
    received = len(_to_mum(family))
    before = len(await day.control.timeline(mum.band.address))
    for _ in range(3):
        await day.press(mia)
        await asyncio.sleep(0.6)
    day.say("21:30", "Mum's and Dad's quiet hours have begun; Mia sends three goodnight hugs")
    await day.until("the held hugs to reach Mum's phone", lambda: len(_to_mum(family)) >= received + 3)
    await asyncio.sleep(2.0)
    buzzed = [
        e for e in (await day.control.timeline(mum.band.address))[before:] if e.kind == "motor" and e.value
    ]
    day.say("21:31", f"Mum's phone holds them: {len(buzzed)} buzzes at night")
    t_release = await day.control.now()
    mum.phone.router.set_schedule(NO_QUIET_HOURS)
    dad.phone.router.set_schedule(NO_QUIET_HOURS)
    latency = await day.buzz_after(mum, t_release)
    day.say("07:00", "next morning Mum's band plays them together, with their count: 3 hugs")
    if latency > 2000:
        day.say("", f"(after {latency / 1000:.0f} s: this day is squeezed into a minute, and the storm rule")
        day.say("", "lets a band buzz at most 3 times a minute)")
    day.latencies.pop()  # a held hug's wait is the night, not latency


async def many_hugs(day: Day, family: Family, n: int) -> None:
    """N presses on Mia's band (at school: through the class hub), as fast as taps can be told apart;
    each hug's latency runs from its release to the start of the buzz that played it on Mum's band
    (storms fold several into one)."""
    mia, mum = family.mia, family.mum
    offset_ms = await day.control.now() - time.time() * 1000  # airspace ms = wall ms + offset
    releases: list[float] = []
    for i in range(n):
        releases.append(await day.press(mia))
        await asyncio.sleep(0.45)  # longer than the band's multi-tap gap: separate presses
        if i % 50 == 49:
            day.say("", f"{i + 1} presses sent")
    await day.until("every press to reach Mum", lambda: _presses(_to_mum(family)) >= n, 300)
    await day.until("every hug to be felt", lambda: len(_felt_by_mum(family)) >= len(_to_mum(family)), 300)
    motor_on = [e.t_ms for e in await day.control.timeline(mum.band.address) if e.kind == "motor" and e.value]
    sent_at = mum.phone.hugstore.sent_times(mum.band_id)
    for release, hug in zip(releases, _sent_by_mia(family), strict=False):
        play_ms = sent_at.get(hug.hug_id, 0.0) * 1000 + offset_ms
        start = next((t for t in motor_on if t >= play_ms - 5), None)
        if start is not None:
            day.latencies.append(start - release)


def _presses(hugs: list[HistoryEntry]) -> int:
    """Presses: taps closer together than the band's multi-tap gap arrive as one hug."""
    return sum(h.hug.count for h in hugs)


def _summary(day: Day, family: Family, presses_sent: int | None = None) -> dict[str, Any]:
    """Hugs Mia sent and Mum received; with `presses_sent` (the --hugs run), counted in presses;
    `via_hub`: Mia's presses carried by the class hub; `class`: the class-wide burst."""
    mum = family.mum
    received = _to_mum(family)
    ids = [h.hug_id for h in received]
    felt = _felt_by_mum(family)
    sent_by_mia = len(_sent_by_mia(family))
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
        presses = _presses(received)
        felt_presses = sum(h.hug.count for h in received if h.hug_id in felt)
        return {
            "sent": presses_sent,
            "received": presses,
            "felt": felt_presses,
            "lost": max(0, presses_sent - presses),
            "duplicates": len(ids) - len(set(ids)) + max(0, presses - presses_sent),
            "hugs": len(set(ids)),
            "buzzes": int(buzzes),
            "latency_ms": latency,
            "child_phones": 0,
            "via_hub": _presses_via_hub(family),
            **_class(day),
        }
    return {
        "sent": sent_by_mia,
        "buzzes": int(buzzes),
        "received": len(set(ids)),
        "presses_received": _presses(received),
        "felt": len(felt),
        "lost": max(0, sent_by_mia - len(set(ids))),
        "duplicates": len(ids) - len(set(ids)),
        "latency_ms": latency,
        "child_phones": 0,
        "via_hub": _presses_via_hub(family),
        **_class(day),
    }


def _class(day: Day) -> dict[str, Any]:
    if not day.burst:
        return {}
    b = day.burst
    lost, dup = max(0, b["sent"] - b["received"]), max(0, b["received"] - b["sent"])
    return {"class": {"bands": b["sent"] + 1, **b, "lost": lost, "duplicates": dup}}


async def _main(args: argparse.Namespace) -> int:
    day_ref: list[Day] = []

    def changed() -> None:
        if day_ref:
            day_ref[0].changed.set()

    with tempfile.TemporaryDirectory(prefix="hugbutton-demo-") as tmp:
        async with world(args.broker, Path(tmp), changed) as (w, broker_url), School.open(w) as school:
            day = Day(w.control, quiet=args.json)
            day_ref.append(day)
            if not args.json:
                print(
                    f"Hug Button demo: broker {broker_url}; Mia (a band, no phone), Mum (a phone owning"
                    " her band and Mia's), Dad (a phone and a band), the home gateway co-owning Mia's"
                    f" band, the class hub{f' and {args.klass - 1} classmates' if args.klass > 1 else ''}\n",
                    flush=True,
                )
            family = await _setup(day, w, school, args.klass, changed)
            if args.hugs:
                await many_hugs(day, family, args.hugs)
                if school.classmates:
                    await class_burst(day, family, school)
            elif getattr(args, "ui", False):  # the same day, both phones' apps on screen
                from hugapp.dev import demo_ui

                phones = {"Mum": family.mum.phone, "Dad": family.dad.phone}
                await demo_ui.run(phones, scripted_day(day, family, school))
            else:
                await scripted_day(day, family, school)
            await day.until(
                "every hug to be felt", lambda: len(_felt_by_mum(family)) >= len(_to_mum(family)), 120
            )
            await asyncio.sleep(2.0)  # a duplicate would show up now
            summary = _summary(day, family, args.hugs or None)
            bands = [p.band for p in family.people().values()]
            summary["band_runtime"] = bands[0].runtime
            summary["band_heap_peak_bytes"] = max(b.heap_peak for b in bands)  # 0: not measured
    if args.json:
        print(json.dumps(summary))
    else:
        lat = summary["latency_ms"]
        print(
            f"\n{summary['sent']} hugs sent by Mia, {summary['received']} received by Mum, "
            f"{summary['felt']} felt, {summary['lost']} lost, {summary['duplicates']} duplicates; "
            f"press -> partner motor: p50 {lat['p50']} ms, p99 {lat['p99']} ms; Mia has no phone; "
            f"{summary['via_hub']} of her presses came through the class hub"
        )
        if "class" in summary:
            c = summary["class"]
            print(
                f"class of {c['bands']}: {c['sent']} burst presses, {c['received']} reached home, "
                f"{c['lost']} lost, {c['duplicates']} duplicates, the last {c['last_s']} s after the first"
            )
    ok = summary["lost"] == 0 and summary["duplicates"] == 0
    burst = summary.get("class", {"lost": 0, "duplicates": 0})
    return 0 if ok and burst["lost"] == 0 and burst["duplicates"] == 0 else 1


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        return asyncio.run(_main(args))
    except DemoError as exc:
        print(f"hugbutton demo: {exc}", file=sys.stderr)
        return 1
