"""A band at school, served by the classroom hub: the owner's phone is out of the band's range, the hub
in it. The owner's unchanged BandLink reaches the band through the hub's sealed tunnel: a press
reaches the owner once, a Play buzzes the band once, and a hub restarted mid-way loses nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hubkit import TAP_MS, pulses, school
from relaykit import TestBroker, run

from hugapp.core.bandlink import LinkState
from hugproto import patterns

BROKER_KINDS = ["mosquitto"]


def test_press_and_play_through_the_hub(broker: TestBroker, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with school(tmp_path, broker) as s:
            await s.pair_and_leave()
            s.start_hub()
            await s.enrol()
            await s.open_tunnel()
            link = s.link()
            await asyncio.wait_for(link.connected.wait(), 30)
            assert link.battery is not None  # the AuthOk came back through the hub
            await s.control.hold(s.band.address, TAP_MS)
            await s.until(lambda: len(s.pressed) == 1)
            before = await s.motor_runs()
            token = await link.play(patterns.HUG, 1, 255, 1)
            await s.until(lambda: token in s.felt)
            await asyncio.sleep(1.0)  # anything repeated would have arrived
            once = pulses(patterns.HUG, 1, 255, 1)
            assert await s.motor_runs() == before + once, "the Play buzzed the band once"
            assert s.felt == [token]
            assert len(s.store.presses(s.band_id)) == 1
            assert len(s.pressed) == 1
            assert s.hub is not None
            assert s.hub.stats.rejected == 0

    run(scenario(), 150)


def test_hub_restarted_mid_way_loses_nothing(broker: TestBroker, tmp_path: Path) -> None:
    """Presses made while the hub is down wait on the band and arrive once when it is back."""

    async def scenario() -> None:
        async with school(tmp_path, broker) as s:
            await s.pair_and_leave()
            s.start_hub()
            await s.enrol()
            await s.open_tunnel()
            link = s.link()
            await asyncio.wait_for(link.connected.wait(), 30)
            await s.control.hold(s.band.address, TAP_MS)
            await s.until(lambda: len(s.pressed) == 1)
            await s.stop_hub()
            await s.until(lambda: link.state is not LinkState.CONNECTED, 15)
            for _ in range(2):
                await s.control.hold(s.band.address, TAP_MS)
                await asyncio.sleep(0.7)
            s.start_hub()
            await s.until(lambda: len(s.pressed) == 3, 60)
            await asyncio.sleep(1.5)
            assert len(s.store.presses(s.band_id)) == 3
            assert len(s.pressed) == 3
            assert len(set(s.pressed)) == 3

    run(scenario(), 200)
