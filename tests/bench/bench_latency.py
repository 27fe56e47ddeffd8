"""Latency benchmark on loopback, one broker, no simulated radio delay.

Measured in the same run, on the same broker (Mosquitto if installed, else the embedded one):
* bare MQTT: aiomqtt QoS 1 publish -> the subscriber's receive (two clients, N messages, one at a time);
* relay: companion to companion through hugapp's Relay (sealed envelope, durable SQLite outbox,
  dedup, end-to-end ack): Relay.send() -> the partner Relay's on_message, N hugs;
* press -> partner motor, N hugs through the whole product: virtual bands running the firmware, the
  simulated radio (no delay), bleak, two Companions per family, the broker. Per hug, in airspace time:
  the tap's release, the band putting the press on the air (its Event notification; the wait before it
  is the band's 0.4 s multi-tap window), and the partner band's motor starting. Families take turns,
  one hug in flight, so each band's previous buzz has ended before its next hug arrives. The storm
  rule (3 buzzes a minute, the rest folded and delayed on purpose) is set out of reach here: it is a
  deliberate wait, not latency; `hugbutton demo --hugs 1000` shows the product with it.
Ratios are against bare MQTT p50 / p99 (target: press -> motor p99 <= 20 ms, ratio <= 3).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt
from common import md_table, pct, save, table
from relaykit import HOST, EmbeddedTestBroker, MosquittoTestBroker, Phone, make_circle

from hugapp.core.companion import Companion
from hugapp.dev.world import PAIR_HOLD_MS, TAP_MS, open_world
from hugproto.gatt import EVENT_CHAR_UUID
from hugsim.airspace import AirspaceTimeoutError
from hugsim.band.process import BandProcess

N = int(os.environ.get("HUG_BENCH_HUGS", "1000"))
FAMILIES = int(os.environ.get("HUG_BENCH_FAMILIES", "4"))
BUZZ_OVER_MS = 1600  # the longest hug pattern (1.41 s) has ended: the next one starts the motor afresh


async def bare(port: int, n: int) -> list[float]:
    out: list[float] = []
    async with (
        aiomqtt.Client(HOST, port, identifier="bench-sub") as sub,
        aiomqtt.Client(HOST, port, identifier="bench-pub") as pub,
    ):
        await sub.subscribe("bench/lat", qos=1)
        it = sub.messages.__aiter__()
        for i in range(n + 20):
            t0 = time.perf_counter()
            await pub.publish("bench/lat", str(i).encode(), qos=1)
            async with asyncio.timeout(5):
                await it.__anext__()
            if i >= 20:  # warm-up
                out.append((time.perf_counter() - t0) * 1000)
    return out


async def relay(url: str, n: int, tmp: Path) -> tuple[list[float], int]:
    a, b = Phone(tmp, "Kid Mia"), Phone(tmp, "Mum Ann")
    link = make_circle(a, b)
    got: dict[str, float] = {}
    done = asyncio.Event()
    want: list[str] = []

    async def on_msg(m: Any) -> None:
        got.setdefault(m.msg_id, time.perf_counter())
        if len(want) and m.msg_id == want[-1]:
            done.set()

    b._on_message = on_msg  # type: ignore[method-assign]
    ra = await a.start(url, poll_interval=1.0)
    await b.start(url, poll_interval=1.0)
    lat: list[float] = []
    errors = 0
    for i in range(n + 20):
        done.clear()
        t0 = time.perf_counter()
        mid = await ra.send(link, {"gesture": "tap", "taps": 1})
        want.append(mid)
        try:
            async with asyncio.timeout(5):
                while mid not in got:
                    await done.wait()
                    done.clear()
        except TimeoutError:
            errors += 1
            continue
        if i >= 20:
            lat.append((got[mid] - t0) * 1000)
    await a.stop()
    await b.stop()
    return lat, errors


class Family:
    def __init__(self, kid: BandProcess, parent: BandProcess, phones: tuple[Companion, Companion]) -> None:
        self.kid = kid
        self.parent = parent
        self.phones = phones
        self.last_buzz_ms = -1e9


SEGMENTS = {
    "seg_band_phone": "on the air -> own phone has stored the press",
    "seg_phone_phone": "-> partner phone has it (sealed, through the broker)",
    "seg_phone_band": "-> partner phone starts writing the Play to its band",
    "seg_band_motor": "-> partner band's motor on (the GATT write and the band)",
}


async def _marks(fam: Family, offset_ms: float, after_ms: float) -> list[float] | None:
    """The newest hug's times on the phones, in airspace ms: stored by the presser's phone, received by
    the partner's phone, Play started to the partner's band. None if they do not all come after
    ``after_ms`` within a second (the Play's row is written once the band acknowledged the write, which
    can be after the motor started)."""
    kid, parent = fam.phones[0].store.db, fam.phones[1].store.db
    for _ in range(100):
        marks = [
            kid.execute("SELECT MAX(received_at) FROM presses").fetchone()[0],
            parent.execute("SELECT MAX(received_at) FROM relay_seen").fetchone()[0],
            parent.execute("SELECT MAX(sent_at) FROM plays WHERE hug_id NOT LIKE 'tick:%'").fetchone()[0],
        ]
        ms = [m * 1000 + offset_ms for m in marks if m is not None]
        if len(ms) == 3 and min(ms) >= after_ms:
            return ms
        await asyncio.sleep(0.01)  # polling the phones' stores: nothing to await
    return None


async def bands(url: str, n: int, tmp: Path) -> tuple[dict[str, list[float]], int]:
    """N taps, families in turn, one hug in flight: (release -> on air, on air -> motor, release -> motor)."""
    out: dict[str, list[float]] = {k: [] for k in ("air_ms", "system_ms", "person_ms", *SEGMENTS)}
    errors = unmarked = 0
    changed = asyncio.Event()
    async with open_world(tmp, url) as world:
        control = world.control
        families: list[Family] = []
        for f in range(FAMILIES):
            bands_: list[BandProcess] = []
            phones: list[Companion] = []
            for who in ("kid", "parent"):
                band = await world.band(f"{f}-{who}")
                phone = world.companion(f"{who} {f}", changed.set, relay_retry_interval=60.0)
                phone.router.set_storm_rule(1_000_000, 60.0)
                await world.stack.enter_async_context(phone)
                bands_.append(band)
                phones.append(phone)
            families.append(Family(bands_[0], bands_[1], (phones[0], phones[1])))
        print(f"  {FAMILIES} families: pairing {2 * FAMILIES} bands and linking phones", flush=True)
        await asyncio.gather(
            *(control.hold(b.address, PAIR_HOLD_MS) for f in families for b in (f.kid, f.parent))
        )
        ids: dict[str, str] = {}  # band identity -> the phone's band id
        for fam in families:
            for band, phone in zip((fam.kid, fam.parent), fam.phones, strict=True):
                ids[band.address] = (await phone.pair_band(await control.air_address(band.address))).band_id
            offer = await fam.phones[1].offer_link()
            await fam.phones[0].join_link(offer.code)
            await offer.wait()
        for fam in families:
            for band, phone in zip((fam.kid, fam.parent), fam.phones, strict=True):
                async with asyncio.timeout(60):
                    while not phone.connected(ids[band.address]):
                        changed.clear()
                        await changed.wait()
                assert phone.relay is not None
                await asyncio.wait_for(phone.relay.connected.wait(), 60)
        await asyncio.sleep(2.0)  # the pairing buzzes end
        offset_ms = await control.now() - time.time() * 1000  # airspace ms = the phones' clock + offset
        for i in range(n + 20):
            fam = families[i % FAMILIES]
            wait_ms = fam.last_buzz_ms + BUZZ_OVER_MS - await control.now()
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
            await control.clear_timeline(fam.kid.address)
            await control.clear_timeline(fam.parent.address)
            _, released = await control.hold(fam.kid.address, TAP_MS)
            try:
                on_air = await control.wait_output(
                    fam.kid.address, "notify", lambda v: v == EVENT_CHAR_UUID, since_ms=released, timeout=5
                )
                motor = await control.wait_output(
                    fam.parent.address, "motor", lambda v: float(v) > 0, since_ms=released, timeout=5
                )
            except AirspaceTimeoutError:
                errors += 1
                continue
            fam.last_buzz_ms = motor.t_ms
            if i >= 20:  # warm-up
                out["air_ms"].append(on_air.t_ms - released)
                out["system_ms"].append(motor.t_ms - on_air.t_ms)
                out["person_ms"].append(motor.t_ms - released)
                phones = await _marks(fam, offset_ms, on_air.t_ms - 1.0)
                if phones is None:
                    unmarked += 1
                else:
                    marks = [on_air.t_ms, *phones, motor.t_ms]
                    for key, a, b in zip(SEGMENTS, marks, marks[1:], strict=False):
                        out[key].append(b - a)
            if (i + 1) % 100 == 0:
                print(f"  {i + 1} hugs", flush=True)
    if unmarked:
        print(f"  {unmarked} hugs without all phone-side times (left out of the breakdown only)")
    return out, errors


async def run_all() -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hug-bench-lat-"))
    exe = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    broker = MosquittoTestBroker(exe, tmp) if exe else EmbeddedTestBroker()
    async with broker:
        b = await bare(broker.port, N)
        r, errors = await relay(broker.url, N, tmp)
        full, band_errors = await bands(broker.url, N, tmp)
    return {
        "broker": broker.kind,
        "bare_ms": b,
        "relay_ms": r,
        "errors": errors,
        "band_errors": band_errors,
        **full,
    }


def main() -> dict[str, Any]:
    print(f"latency: {N} messages/hugs each, loopback, one broker, no simulated radio delay", flush=True)
    res = asyncio.run(asyncio.wait_for(run_all(), 3600))
    rows = []
    stats: dict[str, Any] = {}
    for key, label in (
        ("bare_ms", "bare MQTT QoS 1 publish -> receive"),
        ("relay_ms", "phone to phone: Relay.send -> partner on_message"),
        ("system_ms", "press on the air -> partner motor on"),
        ("air_ms", "tap released -> press on the air (multi-tap window)"),
        ("person_ms", "tap released -> partner motor on"),
        *SEGMENTS.items(),
    ):
        v = res[key]
        stats[key] = {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99), "max": max(v, default=float("nan"))}
        rows.append([label, len(v), pct(v, 50), pct(v, 99), stats[key]["max"]])
    bare = stats["bare_ms"]
    ratios = {
        key: (stats[key]["p50"] / bare["p50"], stats[key]["p99"] / bare["p99"])
        for key in ("relay_ms", "system_ms")
    }
    headers = ["path (" + res["broker"] + ")", "n", "p50 ms", "p99 ms", "max ms"]
    print(table(headers, rows))
    lines = [
        f"ratio to bare MQTT, {what}: p50 {ratios[key][0]:.1f}x, p99 {ratios[key][1]:.1f}x"
        for key, what in (("system_ms", "press on the air -> motor"), ("relay_ms", "phone to phone"))
    ]
    errors = f"errors (no delivery within 5 s): relay {res['errors']}, press -> motor {res['band_errors']}"
    print("\n".join(lines) + "\n" + errors)
    md = (
        f"Loopback, broker: {res['broker']}, no simulated radio delay; all rows from the same run on the "
        f"same broker. Press -> motor: {FAMILIES} families of two virtual bands (the firmware in its own "
        "process each) and two Companions, through the simulated radio, bleak and the broker; families take "
        "turns, one hug in flight; the storm rule is set out of reach (it delays the 4th hug in a minute on "
        "purpose). The press is on the air when the band notifies its Event characteristic; before that "
        "the band waits out its 0.4 s multi-tap window (a tap could still become a double tap).\n\n"
        + md_table(headers, rows)
        + "\n\n"
        + "; ".join(f"{ln[0].upper()}{ln[1:]}" for ln in lines)
        + f" (target: press -> motor p99 <= 20 ms, ratio <= 3). {errors[0].upper()}{errors[1:]}."
    )
    data = {
        "broker": res["broker"],
        "families": FAMILIES,
        "stats": stats,
        "ratios": {k: {"p50": v[0], "p99": v[1]} for k, v in ratios.items()},
        "errors": res["errors"],
        "band_errors": res["band_errors"],
        "n": N,
    }
    save("latency", data, md)
    return data


if __name__ == "__main__":
    sys.exit(main() is None)
