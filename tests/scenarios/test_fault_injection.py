"""A thousand hugs while everything that can fail, fails.

Two families, each a child's band (the child has no phone: the family's home gateway owns her band
and sends her presses as hers) and a parent's band and phone; all four bands are pressed all the
time, each band's presses going to the other band of its family. Meanwhile faults
of every kind are injected, by three injectors at once (never two of the same kind together):

- ``ble_drop``: a band's link drops in the middle of a write or a notification (either side of it);
- ``band_reboot``: a band loses power and boots again (SIGKILL of its process);
- ``phone_kill``: a phone's app is killed (SIGKILL) and started again;
- ``broker_kill``: the family broker (Mosquitto) is killed (SIGKILL) and started again;
- ``partition``: the network between the phones and the broker stalls or resets (a TCP proxy);
- ``clock_skew``: a phone's wall clock jumps by up to two minutes either way;
- ``hub_kill``: the classroom hub (``hugbutton hub run``, where each child's band is enrolled by
  its gateway) is killed (SIGKILL) and started again;
- ``school``: a child goes to school for a few seconds: her band is out of every radio's range but
  the hub's, so her gateway reaches it through the hub (and the hub's faults reach her), then home.

Outcomes: every press reaches the partner's phone exactly once and is felt on the partner's band;
no Play token buzzes twice on any band; the delivery latency counted from the end of the last
fault before delivery has p99 <= 5 s. A summary is printed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultkit import Mosquitto, Phone, Proxy
from hubkit import HubProcess, enrol_shows
from testkit import require_tool

from hugapp.core.broker import free_port
from hugapp.dev.world import NO_QUIET_HOURS, PAIR_HOLD_MS
from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.process import BandProcess

FAMILIES = 2
PRESSES = 1000  # 250 on each of the four bands
KINDS = (
    *("ble_drop", "band_reboot", "phone_kill", "broker_kill", "partition", "clock_skew"),
    *("hub_kill", "school"),
)
PER_KIND = 17  # 136 faults
TAP_MS = 150  # a child's tap
GAP_S = 0.45  # longer than the band's multi-tap gap: every press is its own hug
MAX_SKEW_S = 120.0
RECOVERY_P99_S = 5.0
SETTLE_S = 300.0  # after the last press, every hug felt (~10 s here; 6 presses once waited > 90 s)
# A band gets a hug every 0.6 s, so storms fold all the time; in 10 s windows instead of a minute,
# the felt tail after the last press takes seconds rather than minutes.
STORM_RULE = (3, 10.0)
TIME_LIMIT_S = 600.0
TOKEN_INTERNAL = 0x10000  # play tokens from here up are the band's own patterns
HUB = "hub"  # the classroom hub's radio


@dataclass
class Fault:
    kind: str
    target: str
    start: float
    end: float


@dataclass
class Side:
    """One band and the phone it is paired with; its presses are felt by `partner`."""

    band: BandProcess
    phone: Phone
    partner: Side | None = None

    @property
    def address(self) -> str:
        return self.band.address


class Run:
    def __init__(self, tmp: Path, rng: random.Random) -> None:
        self.tmp = tmp
        self.rng = rng
        self.loop = asyncio.get_running_loop()
        self.sides: list[Side] = []
        self.locks: dict[str, asyncio.Lock] = {}
        self.presses: dict[str, list[float]] = {}
        self.delivered: dict[str, list[float]] = {}
        self.stored: dict[str, list[float]] = {}  # when the k-th press reached its own phone
        self.faults: list[Fault] = []
        self.holds: dict[str, list[tuple[float, float]]] = {}  # airspace times of each press
        self.observed = asyncio.Event()  # set after every look at the phones' stores
        self.hub: HubProcess

    def now(self) -> float:
        return self.loop.time()

    async def stop(self) -> None:
        """Every phone, band and hub process this run started."""
        for side in self.sides:
            await side.phone.stop()
            await side.band.kill()
        if hasattr(self, "hub"):
            await self.hub.kill()

    # ------------------------------------------------------------------ the world

    async def start(self, air: str, control: AirspaceControl, broker: Mosquitto, proxy: Proxy) -> None:
        self.air, self.control, self.broker, self.proxy = air, control, broker, proxy
        families = await asyncio.gather(*(self._family(i) for i in range(FAMILIES)))
        for child, parent in families:  # one link code at a time, as families would
            await _link(parent.phone, child.phone)
            for side in (child, parent):
                _set_settings(side.phone, schedule=NO_QUIET_HOURS.to_settings(), storm=STORM_RULE)
            self.sides += (child, parent)
        await self._enrol_children()
        await asyncio.gather(*(s.phone.start() for s in self.sides))

    async def _enrol_children(self) -> None:
        """The class hub starts; each child's gateway types the code it shows. At home (the start)
        the hub does not hear the children's bands."""
        self.hub = HubProcess(self.tmp / "hub", self.proxy.url, self.air)
        (self.tmp / "hub").mkdir()
        for child in self.sides[::2]:
            offer = await asyncio.create_subprocess_exec(
                sys.executable, *self.hub.args[:-1], "enrol", stdout=asyncio.subprocess.PIPE
            )
            assert offer.stdout is not None
            shown = await enrol_shows(offer.stdout)
            await child.phone.run_command("school", shown[-1])  # the QR's text, as a scanner reads it
            await asyncio.wait_for(offer.communicate(), 60)
            assert offer.returncode == 0
            await self.control.out_of_range(child.address, central=HUB)
        await self.hub.start()

    async def _family(self, i: int) -> tuple[Side, Side]:
        pair: list[Side] = []
        for role in ("child", "parent"):
            band = BandProcess(self.air, self.tmp / f"f{i}-{role}-band")
            await band.start()
            # the child has no phone: the family's home gateway owns her band
            name = f"home{i}" if role == "child" else f"{role}{i}"
            phone = Phone(name, self.tmp / f"f{i}-{role}-phone", self.proxy.url, self.air)
            side = Side(band, phone)
            pair.append(side)
            self.locks[band.address] = asyncio.Lock()
            self.presses[band.address] = []
            self.delivered[band.address] = []
            self.stored[band.address] = []
        for side, wearer in zip(pair, (f"Child{i}", ""), strict=True):  # held 5 s, then paired
            await self.control.hold(side.address, PAIR_HOLD_MS)
            on_air = await self.control.air_address(side.address)  # where the band advertises now
            await side.phone.run_command("pair", on_air, *(("--wearer", wearer) if wearer else ()))
        child, parent = pair
        child.partner, parent.partner = parent, child
        return child, parent

    def _counts(self) -> list[tuple[int, int]]:
        """Per side: its presses stored by the partner's phone, and by its own phone."""
        return [
            (self.received(s), int(s.phone.query("SELECT COUNT(*) FROM presses")[0][0]))  # pyright: ignore
            for s in self.sides
        ]

    def received(self, side: Side) -> int:
        """Presses of `side`'s band that its partner's phone has stored."""
        assert side.partner is not None
        rows = side.partner.phone.query(
            "SELECT COALESCE(SUM(json_extract(payload, '$.count')), 0) FROM hugs WHERE direction = 'in'"
        )
        return int(rows[0][0])  # pyright: ignore[reportArgumentType]

    # ------------------------------------------------------------------ load

    async def press_all(self, per_band: int) -> None:
        await asyncio.gather(*(self._presser(s, per_band) for s in self.sides))

    async def _presser(self, side: Side, n: int) -> None:
        await asyncio.sleep(self.rng.uniform(0, GAP_S))
        for _ in range(n):
            async with self.locks[side.address]:
                held = await self.control.hold(side.address, TAP_MS)
                self.presses[side.address].append(self.now())
                self.holds.setdefault(side.address, []).append(held)
                await asyncio.sleep(GAP_S)

    async def observe(self) -> None:
        """Note when each press reaches the partner's phone (the k-th press: when k have arrived)."""
        while True:
            # in a thread: opening a store a killed phone left behind can wait on its recovery, and
            # this event loop also runs the airspace, whose presses must not stall
            counts = await asyncio.to_thread(self._counts)
            now = self.now()
            for side, (got, stored) in zip(self.sides, counts, strict=True):
                arrived = self.delivered[side.address]
                while len(arrived) < got:
                    arrived.append(now)
                own = self.stored[side.address]
                while len(own) < stored:
                    own.append(now)
            self.observed.set()
            await asyncio.sleep(0.05)  # polling other processes' stores: there is no event to await

    # ------------------------------------------------------------------ faults

    async def inject_all(self) -> None:
        """Every fault of the plan, by three injectors at once: faults of different kinds overlap."""
        plan = [k for k in KINDS for _ in range(PER_KIND)]
        self.rng.shuffle(plan)
        one_at_a_time = {k: asyncio.Lock() for k in KINDS}

        async def injector() -> None:
            while plan:
                kind = plan.pop()
                await asyncio.sleep(self.rng.uniform(0.2, 1.0))
                async with one_at_a_time[kind]:
                    start = self.now()
                    target = await getattr(self, "_" + kind)()
                    self.faults.append(Fault(kind, target, start, self.now()))

        await asyncio.gather(injector(), injector(), injector())

    def _pick(self) -> Side:
        return self.rng.choice(self.sides)

    async def _hub_kill(self) -> str:
        await self.hub.kill()
        await asyncio.sleep(self.rng.uniform(0.2, 1.5))
        await self.hub.start()
        return "hub"

    async def _school(self) -> str:
        child = self.rng.choice(self.sides[::2])
        async with self.locks[child.address]:  # between two presses
            await self.control.out_of_range(child.address)
            await self.control.in_range(child.address, central=HUB)
        await asyncio.sleep(self.rng.uniform(2.0, 6.0))  # she presses on at school
        async with self.locks[child.address]:
            await self.control.in_range(child.address)
            await self.control.out_of_range(child.address, central=HUB)
        return child.address

    async def _ble_drop(self) -> str:
        side = self._pick()
        op, when = self.rng.choice(["write", "notify"]), self.rng.choice(["before", "after"])
        async with self.locks[side.address]:  # not while the other injector is rebooting the band
            await self.control.drop_after(side.address, op=op, n=1, when=when)
        return f"{side.address} {op} {when}"

    async def _band_reboot(self) -> str:
        side = self._pick()
        async with self.locks[side.address]:  # not in the middle of a press: that one would be lost
            await side.band.restart()
            for _ in range(500):  # booted: its button is live once it advertises (10 s at most)
                if await self._advertising(side.address):
                    break
                await asyncio.sleep(0.02)  # polling the airspace: it has no event for this
            else:
                raise AssertionError(f"band {side.address} did not come back after a reboot")
            await asyncio.sleep(0.5)  # nobody presses a band in the instant it powers up
        return side.address

    async def _advertising(self, address: str) -> bool:
        nodes = await self.control.list_nodes()
        return any(n["address"] == address and (n["advertising"] or n["connections"]) for n in nodes)

    async def _phone_kill(self) -> str:
        side = self._pick()
        await side.phone.kill()
        await asyncio.sleep(self.rng.uniform(0.0, 1.0))
        await side.phone.start()
        return side.phone.name

    async def _broker_kill(self) -> str:
        await self.proxy.refuse("broker")  # a dead broker's port refuses connections
        await self.broker.kill()
        await asyncio.sleep(self.rng.uniform(0.2, 1.5))
        await self.broker.start()
        await self.proxy.accept("broker")
        return "mosquitto"

    async def _partition(self) -> str:
        how = self.rng.choice(["stall", "cut"])
        if how == "stall":
            self.proxy.stall()
        else:
            await self.proxy.cut()
        await asyncio.sleep(self.rng.uniform(0.5, 3.0))
        await self.proxy.heal()
        return how

    async def _clock_skew(self) -> str:
        side = self._pick()
        side.phone.set_skew(round(self.rng.uniform(-MAX_SKEW_S, MAX_SKEW_S), 1))
        return f"{side.phone.name} {side.phone.skew:+.0f} s"

    # ------------------------------------------------------------------ outcomes

    def registered(self) -> int:
        """Presses the bands registered: each band's next sequence number (its flash outbox) minus
        the first one its phone received."""
        from hugband.outbox import Outbox

        total = 0
        for s in self.sides:
            first = s.phone.query("SELECT MIN(seq) FROM presses")[0][0]
            data = (s.band.state_dir / "outbox.bin").read_bytes()
            outbox = Outbox()
            outbox.from_bytes(data, 0)
            if first is not None:
                total += (outbox.next_seq - int(first)) & 0xFFFF  # pyright: ignore[reportArgumentType]
        return total

    def unfelt(self) -> int:
        return sum(
            int(
                s.phone.query(
                    "SELECT COUNT(*) FROM hugs h WHERE direction = 'in' AND NOT EXISTS "
                    "(SELECT 1 FROM plays p WHERE p.hug_id = h.hug_id AND p.state = 'felt')"
                )[0][0]  # pyright: ignore[reportArgumentType]
            )
            for s in self.sides
        )

    async def settle(self) -> None:
        """Until every press a band registered has reached its partner's phone and been felt there
        (TimeoutError after SETTLE_S)."""
        async with asyncio.timeout(SETTLE_S):
            while sum(len(d) for d in self.delivered.values()) < await asyncio.to_thread(
                self.registered
            ) or await asyncio.to_thread(self.unfelt):
                self.observed.clear()
                await self.observed.wait()

    def report(self) -> str:
        """Where every band's presses are: pressed, stored by its own phone, stored by the partner's
        phone, and the partner's plays by state."""
        lines = []
        for s in self.sides:
            assert s.partner is not None
            own = s.phone.query("SELECT COUNT(*) FROM hugs WHERE direction = 'out'")[0][0]
            plays = dict(s.partner.phone.query("SELECT state, COUNT(*) FROM plays GROUP BY state"))
            lines.append(
                f"{s.phone.name} band {s.address}: pressed {len(self.presses[s.address])}, "
                f"own phone has {own}, partner has {self.received(s)}, partner plays {plays}, "
                f"partner clock {s.partner.phone.skew:+.0f} s"
            )
        return "\n".join(lines)

    async def dump(self, path: Path) -> None:
        """Each band's presses and outputs (motor aside) and the faults, for a post-mortem."""
        out: dict[str, object] = {"faults": [(f.kind, f.target, f.start, f.end) for f in self.faults]}
        for s in self.sides:
            timeline = await self.control.timeline(s.address)
            out[s.address] = {
                "holds": self.holds.get(s.address, []),
                "timeline": [(e.t_ms, e.kind, e.value) for e in timeline if e.kind != "motor"],
            }
        await asyncio.to_thread(path.write_text, json.dumps(out, default=str))

    def recovery_latencies(self) -> list[tuple[float, str]]:
        """Per press: arrival at the partner's phone minus max(release, end of the last fault
        that ended before that arrival), with the kind of that fault."""
        out: list[tuple[float, str]] = []
        for address, released in self.presses.items():
            stored = self.stored[address]
            for k, (t_release, t_arrived) in enumerate(zip(released, self.delivered[address], strict=False)):
                ble = stored[k] - t_release if k < len(stored) else float("nan")
                last = max((f for f in self.faults if f.end <= t_arrived), key=lambda f: f.end, default=None)
                if last is None or last.end <= t_release:
                    out.append((t_arrived - t_release, f"none ({address}, band->phone {ble:.1f} s)"))
                else:
                    where = f"{last.kind} {last.target} ({address}, band->phone {ble:.1f} s)"
                    out.append((t_arrived - last.end, where))
        return out


async def _link(offerer: Phone, joiner: Phone) -> None:
    proc = await asyncio.create_subprocess_exec(
        *offerer.command_line("offer"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert proc.stdout is not None
    line = b""
    async with asyncio.timeout(60):
        while b"link code:" not in line:
            line = await proc.stdout.readline()
            assert line, "the offer ended without a code"
    code = line.decode().split("link code:")[1].split()[0]
    await joiner.run_command("join", code)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()


def _set_settings(phone: Phone, *, schedule: object, storm: tuple[int, float]) -> None:
    """No quiet hours (the test runs at any hour and every hug must play) and the storm rule, in the
    phone's store before its app starts, as the Settings screen would leave them."""
    import sqlite3

    db = sqlite3.connect(phone.store_path, isolation_level=None)
    try:
        for key, value in (
            ("schedule", schedule),
            ("storm", {"max_buzzes": storm[0], "window_s": storm[1]}),
        ):
            db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )
    finally:
        db.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.alone  # its p99 is a timing figure: nothing else runs beside it
def test_a_thousand_hugs_through_a_hundred_faults(tmp_path: Path) -> None:
    mosquitto_exe = require_tool("mosquitto")

    async def main() -> None:
        t0 = time.monotonic()
        run = Run(tmp_path, random.Random(2026))
        server = Airspace()
        air = await server.start()
        broker = Mosquitto(mosquitto_exe, tmp_path / "broker", free_port())
        await broker.start()
        proxy = Proxy(broker.port)
        await proxy.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            async with AirspaceControl(air) as control:
                await run.start(air, control, broker, proxy)
                t_ready = time.monotonic()
                tasks.append(asyncio.ensure_future(run.observe()))
                faults = asyncio.ensure_future(run.inject_all())
                await run.press_all(PRESSES // len(run.sides))
                await faults
                t_pressed = time.monotonic()
                sent = sum(len(p) for p in run.presses.values())
                try:
                    await run.settle()
                except TimeoutError:
                    await run.dump(tmp_path / "timelines.json")
                    raise AssertionError(
                        f"not every hug arrived and was felt (timelines in {tmp_path}):\n{run.report()}"
                    ) from None
                await asyncio.sleep(3.0)  # a duplicate would arrive now
                await run.dump(tmp_path / "timelines.json")
                received = sum(run.received(s) for s in run.sides)
                registered = run.registered()
                missed = sum(
                    int(s.phone.query("SELECT COUNT(*) FROM hugs WHERE missed = 1")[0][0])  # pyright: ignore
                    for s in run.sides
                )
                duplicate_buzzes = 0
                plays = 0
                for side in run.sides:
                    tokens = Counter(
                        int(e.value)  # pyright: ignore[reportArgumentType]
                        for e in await control.timeline(side.address)
                        if e.kind == "play" and int(e.value) < TOKEN_INTERNAL  # pyright: ignore
                    )
                    plays += len(tokens)
                    duplicate_buzzes += sum(c - 1 for c in tokens.values())
                    felt_tokens = {
                        int(r[0])  # pyright: ignore[reportArgumentType]
                        for r in side.phone.query(
                            "SELECT DISTINCT token FROM plays WHERE state = 'felt' "
                            "AND band = (SELECT band_id FROM bands)"  # the phone's one band
                        )
                    }
                    assert felt_tokens <= set(tokens), "a play marked felt was never played"
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await run.stop()
            await proxy.close()
            await broker.stop()
            await server.close()

        by_kind = Counter(f.kind for f in run.faults)
        after = run.recovery_latencies()
        recovery = [t for t, _k in after]
        p50, p99 = _pct(recovery, 0.5), _pct(recovery, 0.99)
        slowest = "slowest deliveries after recovery: " + ", ".join(
            f"{t:.1f} s after {k}" for t, k in sorted(after, reverse=True)[:12]
        )
        print("\n" + slowest)
        print(
            f"\nfault injection: {sent} presses on {len(run.sides)} bands, {len(run.faults)} faults "
            f"({', '.join(f'{k} {by_kind[k]}' for k in KINDS)}); {registered} registered by the bands, "
            f"{received} received, {registered - received} lost, {missed} missed, "
            f"{duplicate_buzzes} duplicate buzzes, "
            f"{plays} plays; delivery after recovery p50 {p50:.2f} s, p99 {p99:.2f} s, "
            f"max {max(recovery):.2f} s; setup {t_ready - t0:.0f} s, load {t_pressed - t_ready:.0f} s, "
            f"total {time.monotonic() - t0:.0f} s"
        )
        assert sent == PRESSES
        assert all(by_kind[k] >= PER_KIND for k in KINDS)
        assert len(run.faults) >= len(KINDS) * PER_KIND
        # The band time-stamps button edges in a hard IRQ, but a tap is only kept (in flash) once its
        # multi-tap window has passed: a reboot right after a press's GAP_S, with the band's process
        # starved of CPU, can still take it. Reported; the promise starts at the press the band kept.
        print(f"presses the bands did not register: {sent - registered}")
        assert sent - registered <= PRESSES // 100
        assert received == registered, "no registered press is lost and none is received twice"
        assert missed == 0, f"{missed} hug(s) marked missed"
        assert duplicate_buzzes == 0, f"{duplicate_buzzes} Play token(s) buzzed twice"
        assert p99 <= RECOVERY_P99_S, slowest

    asyncio.run(asyncio.wait_for(main(), TIME_LIMIT_S))
