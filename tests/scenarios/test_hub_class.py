"""A class of 20 on one classroom hub whose radio holds 7 links: links come on demand and go when
idle, and a class-wide burst ("everyone, send a hug home!") is delivered in full, once; a Play to
every band buzzes each once."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from classkit import TAP_MS, classroom
from hubkit import pulses
from relaykit import TestBroker, run

from hugapp.core.bandlink import LinkState
from hugproto import patterns

BROKER_KINDS = ["mosquitto"]
CLASS = int(os.environ.get("HUG_CLASS", "20"))
HUB_LINKS = 7  # the airspace's default per-central limit, as a real adapter
BURST_S = 10.0


@pytest.mark.slow
def test_a_class_of_twenty_on_a_seven_link_hub(broker: TestBroker, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with classroom(tmp_path, broker, CLASS) as c:
            links = [p.link for p in c.pupils]
            assert all(link is not None for link in links)
            # every family's link comes up once, and lets go when idle: at most 7 at a time
            await c.until(
                lambda: all(p.link is not None and p.link.stats.connects >= 1 for p in c.pupils), 240
            )
            await c.until(
                lambda: all(p.link is not None and p.link.state is LinkState.PARKED for p in c.pupils), 60
            )
            assert c.most_links <= HUB_LINKS

            # the class-wide burst: every child presses within 10 s
            t0 = time.monotonic()
            for p in c.pupils:
                await c.control.hold(p.band.address, TAP_MS)
                await asyncio.sleep(BURST_S / CLASS)
            await c.until(lambda: all(p.pressed for p in c.pupils), 180, "every press of the burst")
            last = max(p.pressed[0][1] for p in c.pupils) - t0
            await asyncio.sleep(3.0)  # a press handed on twice would be by now
            for p in c.pupils:
                assert len(p.store.presses(p.band_id)) == 1, "each press stored once"
                assert len(p.pressed) == 1, "and handed on once"

            # a Play to every band: the owner wants the link, it comes, the band buzzes once
            before = [len(await c.control.motor_starts(p.band.address)) for p in c.pupils]
            t1 = time.monotonic()

            async def hug(i: int) -> None:
                link = c.pupils[i].link
                assert link is not None
                while True:
                    link.want()
                    await c.until(lambda: link.state is LinkState.CONNECTED, 120, f"link {i} for a Play")
                    try:
                        token = await link.play(patterns.HUG, 1, 255, 1)
                        break
                    except Exception:  # noqa: BLE001 - the link was let go just then: ask again
                        await asyncio.sleep(0.5)
                await c.until(lambda: token in c.pupils[i].felt, 120, f"band {i} felt its Play")

            await asyncio.gather(*(hug(i) for i in range(CLASS)))
            felt_s = time.monotonic() - t1
            await asyncio.sleep(2.0)
            once = pulses(patterns.HUG, 1, 255, 1)
            after = [len(await c.control.motor_starts(p.band.address)) for p in c.pupils]
            assert [a - b for a, b in zip(after, before, strict=True)] == [once] * CLASS
            assert c.most_links <= HUB_LINKS
            releases = sum(p.link.stats.releases for p in c.pupils if p.link is not None)
            print(
                f"\nclass of {CLASS} on a {HUB_LINKS}-link hub: burst of {CLASS} presses within "
                f"{BURST_S:.0f} s, the last stored {last:.1f} s after the first press; a Play to every "
                f"band felt within {felt_s:.1f} s; most links at once {c.most_links}; links let go "
                f"when idle {releases}"
            )

    run(scenario(), 900)
