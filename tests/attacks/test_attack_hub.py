"""A hostile classroom hub (hubkit.TamperingHub) between a band at school and its owner: it can
delay or drop what it carries, never read, forge, replay or reorder it into a wrong buzz. It flips
bits, carries frames twice, drops one, swaps them, and injects frames of its own and every command
the owner ever sent; the band's session (protocol 2) and the owner's unchanged BandLink hold."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from hubkit import TAP_MS, TamperingHub, pulses, school
from relaykit import TestBroker, run

from hugapp.core.bandlink import BandUnavailable, LinkState
from hugproto import frames, patterns

BROKER_KINDS = ["mosquitto"]


def test_a_hostile_hub_can_delay_but_never_forge_replay_or_buzz(broker: TestBroker, tmp_path: Path) -> None:
    """The hub flips bits in what it carries, carries everything twice, and injects frames of its own
    (random bytes, a Play sealed under a key it guessed, every command the owner ever sent): the band
    and the owner's band link reject all of it. A press held back arrives once when the hub relents;
    nothing buzzes but the owner's Play, once."""

    async def scenario() -> None:
        async with school(tmp_path, broker) as s:
            link = await s.at_school(TamperingHub)
            hub = s.hub
            assert isinstance(hub, TamperingHub)
            await asyncio.sleep(0.5)
            once = pulses(patterns.HUG, 1, 255, 1)

            hub.flip_notifications = True  # a press, altered on its way: rejected, not lost
            await s.control.hold(s.band.address, TAP_MS)
            await s.until(lambda: link.stats.frames_rejected >= 1, 20)
            await asyncio.sleep(1.0)
            assert s.pressed == []
            assert s.store.presses(s.band_id) == []
            hub.flip_notifications = False
            await s.until(lambda: len(s.pressed) == 1, 40)

            await s.until(lambda: link.state is LinkState.CONNECTED, 30)
            hub.flip_writes = True  # a Play, altered: the band plays nothing
            before = await s.motor_runs()
            with contextlib.suppress(BandUnavailable):
                await link.play(patterns.HUG, 1, 255, 1)
            await asyncio.sleep(2.0)
            assert await s.motor_runs() == before
            hub.flip_writes = False

            await s.until(lambda: link.state is LinkState.CONNECTED, 30)
            hub.replay = True  # everything carried twice: felt once, stored once
            before = await s.motor_runs()
            token = await link.play(patterns.HUG, 1, 255, 1)
            await s.until(lambda: token in s.felt, 30)
            await s.control.hold(s.band.address, TAP_MS)
            await s.until(lambda: len(s.pressed) == 2, 30)
            await asyncio.sleep(2.0)
            assert await s.motor_runs() == before + once
            assert s.felt.count(token) == 1
            assert len(s.store.presses(s.band_id)) == 2
            hub.replay = False

            await s.until(lambda: link.state is LinkState.CONNECTED, 30)
            before = await s.motor_runs()
            guessed = frames.Session(os.urandom(16), os.urandom(8), os.urandom(8), frames.PHONE)
            forged = guessed.seal(frames.Play(patterns.HUG, 1, 255, 1, 7))
            made = [os.urandom(20), forged, *hub.written]
            injected = 0
            while injected < len(made):  # the band may drop a link that carries junk: again on the next
                await s.until(lambda: any(x.client is not None for x in hub.served.values()), 30)
                injected += await hub.inject(made[injected:])
            await asyncio.sleep(3.0)
            assert await s.motor_runs() == before, "nothing the hub made or replayed buzzed"
            assert len(s.store.presses(s.band_id)) == 2

    run(scenario(), 240)


def test_a_hub_that_drops_one_press_frame_loses_no_press(broker: TestBroker, tmp_path: Path) -> None:
    """Dropping is allowed to a hub; losing is not. The band's Ack is cumulative, so the owner must
    not acknowledge the press after a missing frame: it sees the gap in the session's counter, drops
    the link, and the band sends both presses again on the next."""

    async def scenario() -> None:
        async with school(tmp_path, broker) as s:
            link = await s.at_school(TamperingHub)
            hub = s.hub
            assert isinstance(hub, TamperingHub)
            await asyncio.sleep(1.0)
            hub.drop_notifications = 1  # the next thing the band says (the first press) goes nowhere
            await s.control.hold(s.band.address, TAP_MS)
            await asyncio.sleep(1.0)
            await s.control.hold(s.band.address, TAP_MS)
            await s.until(lambda: len(s.pressed) >= 1, 20)
            await s.until(lambda: len(s.store.presses(s.band_id)) >= 2, 30)
            await asyncio.sleep(3.0)  # a press stored twice would be stored by now
            assert len(s.store.presses(s.band_id)) == 2
            assert sorted(s.pressed) == sorted(set(s.pressed)), "each press handled once"
            assert link.stats.frames_missing == 1, "the gap was seen, and the link started again"

    run(scenario(), 120)


def test_a_hub_that_reorders_loses_nothing_and_buzzes_nothing_wrong(
    broker: TestBroker, tmp_path: Path
) -> None:
    """The hub carries the band's frames newer first, and the owner's commands too (it says "written"
    to the first and holds it back until the next has gone). The owner's band link sees the gap in
    the band's counter and starts the link again: both presses arrive, once each. The band refuses a
    command out of order: each Play buzzes exactly once (the owner's playback sends an unfelt one
    again, with its token), and nothing else buzzes."""

    async def scenario() -> None:
        async with school(tmp_path, broker) as s:
            link = await s.at_school(TamperingHub)
            hub = s.hub
            assert isinstance(hub, TamperingHub)
            await asyncio.sleep(1.0)
            once = pulses(patterns.HUG, 1, 255, 1)

            hub.swap_notifications = 1  # two presses, carried newer first
            await s.control.hold(s.band.address, TAP_MS)
            await asyncio.sleep(1.0)
            await s.control.hold(s.band.address, TAP_MS)
            await s.until(lambda: len(s.store.presses(s.band_id)) >= 2, 40)
            await asyncio.sleep(3.0)  # a press stored twice would be stored by now
            assert hub.swapped == 1
            assert len(s.store.presses(s.band_id)) == 2
            assert sorted(s.pressed) == sorted(set(s.pressed)), "each press handled once"
            assert len(s.pressed) == 2
            assert link.stats.frames_missing >= 1, "the gap was seen, and the link started again"

            async def play(signature: int, token: int | None = None) -> int:
                """As the owner's playback: when the link is up (a parked one asked for), again if it
                went meanwhile (an idle link through a hub is let go after 3 s)."""
                async with asyncio.timeout(60):
                    while True:
                        with contextlib.suppress(BandUnavailable):  # not up (yet, or any more): again
                            await link.ready(30)
                            return await link.play(patterns.HUG, signature, 255, 1, token=token)
                        await asyncio.sleep(0.2)  # the link is going or coming: let it

            hub.swap_writes = 1  # two Plays, carried newer first
            before = await s.motor_runs()
            await link.ready(30)
            first, second = await asyncio.gather(play(1), play(2))
            await asyncio.sleep(5.0)
            for token, signature in ((first, 1), (second, 2)):  # as Playback sends an unfelt Play again
                if token not in s.felt:
                    await play(signature, token)
            await s.until(lambda: first in s.felt and second in s.felt, 30)
            await asyncio.sleep(3.0)  # a Play buzzing twice would have buzzed by now
            assert hub.swapped == 2
            assert (s.felt.count(first), s.felt.count(second)) == (1, 1)
            assert await s.motor_runs() == before + once + pulses(patterns.HUG, 2, 255, 1)

    run(scenario(), 180)
