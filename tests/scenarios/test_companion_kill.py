"""A child's home gateway (its own process) is killed with SIGKILL again and again while the child
keeps pressing; every press reaches Mum exactly once and is felt."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

from hugapp.core.bandlink import BleConfig
from hugapp.core.broker import EmbeddedBroker
from hugapp.core.companion import Companion
from hugapp.core.hugs import DayType, Receipt, Schedule
from hugapp.core.notify import DesktopNotifier
from hugapp.core.store import Store
from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.process import BandProcess
from hugsim.phone.bleak_backend import airspace_backend

PRESSES = 3  # under the storm rule (3 buzzes a minute); tests/faults kills phones 17 times under load
ALWAYS = Schedule(windows={DayType.SCHOOL: (), DayType.HOME: ()})


async def hugbutton(*args: str, wait: bool = True) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hugapp.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    if wait:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out.decode()
    return proc


def test_gateway_killed_at_any_point_loses_and_repeats_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        rng = random.Random(7)
        server = Airspace()
        air = await server.start()
        broker = EmbeddedBroker("127.0.0.1", 0)
        await broker.start()
        child_band = BandProcess(air, tmp_path / "child-band")
        mum_band = BandProcess(air, tmp_path / "mum-band")
        gateway: asyncio.subprocess.Process | None = None
        try:
            await child_band.start()
            await mum_band.start()
            changed = asyncio.Event()
            mum = Companion(
                Store(tmp_path / "mum.sqlite3"),
                BleConfig(*airspace_backend(air, "mum")),
                broker.url,
                name="Mum",
                notifier=DesktopNotifier(),
                on_change=changed.set,
                relay_retry_interval=2.0,
            )
            mum.router.set_schedule(ALWAYS)
            gw = [
                "gateway",
                "--data",
                str(tmp_path / "gw"),
                "--broker",
                broker.url,
                "--airspace",
                air,
                "--name",
                "Mia",
            ]
            async with AirspaceControl(air) as control, mum:
                await control.hold(mum_band.address, 5300)
                await mum.pair_band(mum_band.address)
                await control.hold(child_band.address, 5300)
                await hugbutton(*gw, "pair", child_band.address)
                offer = await mum.offer_link()
                await hugbutton(*gw, "join", offer.code)
                await offer.wait()
                await asyncio.sleep(1.0)

                for _ in range(PRESSES):
                    gateway = await hugbutton(*gw, "run", wait=False)
                    await asyncio.sleep(rng.uniform(0.5, 4.0))
                    await control.hold(child_band.address, 80)
                    await asyncio.sleep(rng.uniform(0.0, 2.5))  # stored? acked? routed? published? felt?
                    gateway.send_signal(signal.SIGKILL)
                    await gateway.wait()
                gateway = await hugbutton(*gw, "run", wait=False)

                def incoming() -> list[str]:
                    return [h.hug_id for h in mum.router.history() if h.direction == "in"]

                async with asyncio.timeout(90):
                    while True:
                        changed.clear()
                        hugs_in = incoming()
                        felt = mum.store.db.execute(
                            "SELECT COUNT(DISTINCT hug_id) FROM plays "
                            "WHERE state = 'felt' AND hug_id NOT LIKE 'tick:%'"
                        ).fetchone()[0]
                        if len(hugs_in) >= PRESSES and felt >= PRESSES:
                            break
                        await changed.wait()
                await asyncio.sleep(3.0)  # anything duplicated would have arrived by now
                assert len(incoming()) == PRESSES, "every press once, none twice"
                assert len(set(incoming())) == PRESSES
                gateway.send_signal(signal.SIGTERM)
                await gateway.wait()
                gateway = None
                # the child's side agrees: every hug sent, all felt
                status = await hugbutton(*gw, "status", wait=False)
                out, _ = await status.communicate()
                lines = [line for line in out.decode().splitlines() if line.startswith("hug    ->")]
                assert len(lines) == PRESSES, out.decode()
                assert all(line.endswith(Receipt.FELT.name.lower()) for line in lines), out.decode()
        finally:
            if gateway is not None and gateway.returncode is None:
                gateway.kill()
                await gateway.wait()
            await child_band.kill()
            await mum_band.kill()
            await broker.stop()
            await server.close()

    asyncio.run(asyncio.wait_for(main(), 240))
