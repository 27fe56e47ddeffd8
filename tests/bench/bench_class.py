"""Press -> partner motor through the classroom hub: one hug at rest, and a class-wide burst.

The demo's world (`hugapp.dev.world`, `hugapp.dev.school`): the embedded broker, the simulated radio
(no delay), real band processes, the companions and the product's own hub on its own radio.

* At rest: Mia (no phone) at home, her band served by the home gateway, then at school, served through
  the class hub by Mum's phone at work. N taps, one hug in flight, each after the previous buzz has
  ended; per hug, in airspace time, the tap's release -> Mum's band's motor starting. The storm rule is
  set out of reach (a deliberate wait, not latency).
* Burst: CLASS classmates (each of another family: a parent's phone owning the child's band and the
  parent's own band, worn at work) tap at random moments within 10 s; per press, its release -> that
  parent's band's motor starting; all felt, and the time from the first tap to the last buzz.

A loaded 2-core machine; the hub's radio holds 7 links at once (the airspace's default).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from common import md_table, pct, save, table

from hugapp.core.companion import Companion
from hugapp.dev.school import HUB_CENTRAL, School
from hugapp.dev.world import TAP_MS, Family, open_world
from hugsim.airspace import AirspaceControl, AirspaceTimeoutError

N = int(os.environ.get("HUG_BENCH_CLASS_HUGS", "20"))
CLASS = int(os.environ.get("HUG_BENCH_CLASS", "30"))
BUZZ_OVER_S = 1.6  # the longest pattern has ended
FELT_WAIT_S = 120.0
OUT_OF_REACH = (1_000_000, 60.0)  # the storm rule: no hug is held back


async def _motor_after(control: AirspaceControl, address: str, since_ms: float, timeout: float = 60) -> float:
    entry = await control.wait_output(
        address, "motor", lambda v: float(v) > 0, since_ms=since_ms, timeout=timeout
    )
    return float(entry.t_ms)


async def at_rest(control: AirspaceControl, family: Family, n: int) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        _, released = await control.hold(family.mia.band.address, TAP_MS)
        out.append(await _motor_after(control, family.mum.band.address, released, 20) - released)
        await asyncio.sleep(BUZZ_OVER_S)
    return out


async def burst(school: School) -> dict[str, Any]:
    """Each classmate's press -> that parent's band's motor; a press not felt within FELT_WAIT_S
    counts as not felt (reported, not waited for)."""
    control = school.world.control
    released = await school.burst(within_s=10.0)
    felt: list[float] = []
    last = max(released.values())
    for c in school.classmates:
        assert c.parent_band is not None
        t = released[c.band.address]
        with contextlib.suppress(AirspaceTimeoutError):
            buzz = await _motor_after(control, c.parent_band.address, t, FELT_WAIT_S)
            felt.append(buzz - t)
            last = max(last, buzz)
    return {
        "presses": len(released),
        "felt": len(felt),
        "felt_ms": felt,
        "last_s": (last - min(released.values())) / 1000,
    }


async def run_all(n: int, size: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hug-bench-class-"))
    async with open_world(tmp) as w, School.open(w) as school:
        family = await w.family()
        await w.online_family(family)
        companions: list[Companion] = family.companions()
        for c in companions:
            c.router.set_storm_rule(*OUT_OF_REACH)
        mia = family.mia.band.address
        await w.control.out_of_range(mia, central="mum-phone")
        await w.control.out_of_range(mia, central=HUB_CENTRAL)
        await w.until(lambda: family.home.connected(family.mia.band_id))
        await asyncio.sleep(1.0)
        print(f"  at home: {n} hugs, Mia's band -> the home gateway -> Mum's band", flush=True)
        home = await at_rest(w.control, family, n)

        await school.enrol(family.mum.phone, family.mia.band_id)
        await w.control.out_of_range(mia, central="home-phone")
        await w.control.in_range(mia, central=HUB_CENTRAL)
        link = family.mum.phone.links[family.mia.band_id]
        await w.until(lambda: link.via == "hub")
        await asyncio.sleep(1.0)
        print(f"  at school: {n} hugs, Mia's band -> the class hub -> Mum's phone -> Mum's band", flush=True)
        school_ms = await at_rest(w.control, family, n)
        for label, v in (("at home", home), ("at school", school_ms)):
            print(f"  {label}: p50 {pct(v, 50):.0f} ms, p99 {pct(v, 99):.0f} ms", flush=True)

        t0 = time.monotonic()
        print(f"  the class: {size} more families, each child's band enrolled at the hub", flush=True)
        await school.add_classmates(size, parent_bands=True)
        for c in school.classmates:
            c.parent.router.set_storm_rule(*OUT_OF_REACH)
        print(f"  ({time.monotonic() - t0:.0f} s to pair and enrol); the burst", flush=True)
        await asyncio.sleep(3.0)  # every link through the hub idle and let go: the class at rest
        class_burst = await burst(school)
    return {"n": n, "at_home_ms": home, "at_school_ms": school_ms, "burst": {"class": size, **class_burst}}


def main() -> None:
    data = asyncio.run(run_all(N, CLASS))
    headers = ["press -> partner motor", "hugs", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    b = data["burst"]
    rows: list[list[Any]] = [
        [label, len(v), pct(v, 50), pct(v, 90), pct(v, 99), round(max(v), 1)]
        for label, v in (
            ("at rest, at home (gateway)", data["at_home_ms"]),
            ("at rest, at school (hub)", data["at_school_ms"]),
            (f"burst: {b['class']} classmates within 10 s", b["felt_ms"]),
        )
    ]
    print(table(headers, rows))
    line = (
        f"burst: {b['presses']} presses, {b['felt']} felt; the last buzz {b['last_s']:.1f} s after the first"
    )
    print(line)
    summary = (
        "Press -> partner motor through the classroom hub (demo world, embedded broker, no radio delay, "
        "a hub of 7 links; a loaded 2-core machine).\n\n" + md_table(headers, rows) + "\n\n" + line + "\n"
    )
    save("class", data, summary)


if __name__ == "__main__":
    main()
