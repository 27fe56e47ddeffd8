"""Bad input from inside the circle (a member, a former member, a stolen phone) changes nothing and
stops nothing: every field of every sealed message is checked with one clear error type; an authentic
message that cannot be taken is acknowledged and dropped (a dead letter), never retried forever; and no
exception ends the relay or the companion's tasks silently."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relaykit import Phone, TestBroker, make_circle, run
from test_attack_fuzz import JSON

from hugapp.core import envelope
from hugapp.core import relaystore as rs
from hugapp.core.envelope import Invalid, inbox_topic, open_envelope
from hugapp.core.hugs import HugError
from hugapp.core.relay import MAX_HANDLER_FAILURES, MEMBER_ADDED, Incoming
from hugapp.core.schedule import Schedule
from hugapp.core.store import StoreError

FUZZ = settings(max_examples=2_000, derandomize=True, suppress_health_check=list(HealthCheck), deadline=None)
MEMBER = {"id": "a" * 32, "name": "Gran", "mailbox": "b" * 32, "presence_key": "c" * 64, "signature": 3}
ODD = [math.inf, -math.inf, math.nan, 1e308, 10**400, True, "3", 3.0, -1, 0, 8, 2**63, None, [], {}]


@FUZZ
@given(record=JSON)
def test_member_records_any_json(record: object) -> None:
    try:
        rs.Member.from_wire("L", record if isinstance(record, dict) else {"id": record})  # type: ignore[arg-type]
    except StoreError:
        pass


@FUZZ
@given(field=st.sampled_from(list(MEMBER)), value=st.one_of(JSON, st.sampled_from(ODD)))
def test_member_records_with_any_field(field: str, value: object) -> None:
    """Signature Infinity used to raise OverflowError out of the relay's dispatch."""
    try:
        m = rs.Member.from_wire("L", {**MEMBER, field: value})
    except StoreError:
        return
    assert type(m.signature) is int
    assert 1 <= m.signature <= rs.MAX_SIGNATURE


@FUZZ
@given(settings_=JSON)
def test_schedule_settings_any_json(settings_: object) -> None:
    try:
        Schedule.from_settings(settings_)
    except HugError:
        pass


@FUZZ
@given(
    key=st.sampled_from(["school_days", "windows", "overrides", "missed_after_s"]),
    value=st.one_of(JSON, st.sampled_from(ODD), st.just({"school": [{"start": "25:00", "end": "07:00"}]})),
)
def test_schedule_settings_with_any_field(key: str, value: object) -> None:
    good = Schedule().to_settings()
    try:
        s = Schedule.from_settings({**good, key: value})
    except HugError:
        return
    assert Schedule.from_settings(s.to_settings()).to_settings() == s.to_settings()


@pytest.mark.parametrize("sent_at", [math.nan, math.inf, -math.inf, -5.0, 0.0])
def test_an_authentic_envelope_with_a_time_that_is_not_one_is_invalid(sent_at: float) -> None:
    key, topic, sender = bytes(32), "hug/v1/in/x/y", "a" * 32
    plain = struct.pack(">16sd", bytes(16), sent_at) + json.dumps({"f": sender, "t": "hug", "p": {}}).encode()
    data = envelope.seal_bytes(key, envelope._ad(topic, sender), plain)  # pyright: ignore[reportPrivateUsage]
    with pytest.raises(Invalid) as err:
        open_envelope(key, topic, [sender], data)
    assert err.value.msg_id == "00" * 16
    assert err.value.sender == sender


def test_bad_messages_from_a_member_are_dead_letters_and_stop_nothing(
    broker: TestBroker, tmp_path: Path
) -> None:
    """Gran (a member) sends a member-added whose signature is Infinity, one whose record is garbage,
    and an envelope whose time is NaN; then a real message. Mum's relay takes the real one, drops the
    bad ones as dead letters (acknowledged: Gran's phone stops re-sending them) and stays connected;
    her circle is unchanged."""
    mum, gran = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Gran Rosie")
    link = make_circle(mum, gran)

    async def main() -> None:
        async with broker:
            a = await mum.start(broker.url)
            g = await gran.start(broker.url, retry_interval=0.3)
            members_before = rs.members(mum.store, link)
            evil = {**MEMBER, "signature": math.inf}
            bad = [
                await g.send(link, {"member": evil}, to=mum.member_id, type_=MEMBER_ADDED),
                await g.send(link, {"member": "nope"}, to=mum.member_id, type_=MEMBER_ADDED),
            ]
            circle = rs.link(gran.store, link)
            assert circle is not None
            topic = inbox_topic(circle.key, mum.member_id, mum.me.mailbox)
            _, nan_env = envelope.seal(
                circle.key, topic, gran.member_id, "hug", {"n": 0}, math.nan, "11" * 16
            )
            assert g._client is not None  # pyright: ignore[reportPrivateUsage]
            await g._client.publish(topic, nan_env, qos=1)  # pyright: ignore[reportPrivateUsage]
            good = await g.send(link, {"n": 1}, to=mum.member_id)
            await mum.changed.until(lambda: any(m.msg_id == good for m in mum.received))
            await gran.changed.until(lambda: set(bad) | {good} <= gran.acked_ids())
            await mum.changed.until(lambda: mum.rejected.count("invalid") >= 3)
            assert rs.seen(mum.store, "11" * 16)
            assert a.connected.is_set()
            assert rs.members(mum.store, link) == members_before
            assert [m.msg_id for m in mum.received] == [good]
            await asyncio.sleep(1.0)  # nothing is re-sent any more: the bad ones were acknowledged
            assert rs.outbox_pending(gran.store) == []
            await mum.stop()
            await gran.stop()

    run(main(), timeout=60)


def test_a_message_whose_handler_keeps_failing_is_dropped_after_a_few_tries(
    broker: TestBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A message that makes the handler fail (a bug, or content it cannot take) is not re-sent
    forever: after MAX_HANDLER_FAILURES tries it is acknowledged as a dead letter; others still flow."""
    mum, gran = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Gran Rosie")
    link = make_circle(mum, gran)
    tries: list[int] = []

    async def picky(m: Incoming) -> None:
        if m.payload.get("poison"):
            tries.append(1)
            raise RuntimeError("cannot take this one")
        mum.received.append(m)
        mum.changed.notify()

    async def main() -> None:
        async with broker:
            a = mum.make_relay(broker.url)
            a.on_message = picky
            task = asyncio.create_task(a.run())
            g = await gran.start(broker.url, retry_interval=0.2)
            poison = await g.send(link, {"poison": True}, to=mum.member_id)
            good = await g.send(link, {"n": 1}, to=mum.member_id)
            await gran.changed.until(lambda: {poison, good} <= gran.acked_ids(), timeout=20)
            assert len(tries) == MAX_HANDLER_FAILURES
            assert [m.msg_id for m in mum.received] == [good]
            assert a.connected.is_set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await gran.stop()

    with caplog.at_level(logging.WARNING, logger="hugapp.relay"):
        run(main(), timeout=60)
    assert sum("a dead letter" in r.getMessage() for r in caplog.records) == 1


def test_an_out_of_range_signature_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """Through the window's API (the Companion): the signature is checked where a member is stored."""
    from hugapp.core.bandlink import BleConfig
    from hugapp.core.companion import Companion
    from hugapp.core.store import Store

    mum, gran = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Gran Rosie")
    link = make_circle(mum, gran)
    mum.store.close()

    async def main() -> None:
        c = Companion(Store(mum.db_path), BleConfig(), None)
        before = rs.members(c.store, link)
        for bad in (0, 8, 99, -1, 10**400, True):
            with pytest.raises(StoreError):
                await c.set_signature(gran.member_id, bad)  # type: ignore[arg-type]
        assert rs.members(c.store, link) == before
        await c.set_signature(gran.member_id, 5)
        assert next(m for m in rs.members(c.store, link) if m.member_id == gran.member_id).signature == 5

    run(main(), timeout=30)


def test_a_companion_task_that_fails_is_started_again_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hugapp.core import companion as companion_mod
    from hugapp.core.bandlink import BleConfig
    from hugapp.core.companion import Companion
    from hugapp.core.router import Router
    from hugapp.core.store import Store

    monkeypatch.setattr(companion_mod, "SUPERVISE_MIN_S", 0.05)
    runs: list[int] = []
    real_run = Router.run

    async def flaky(self: Router) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise OverflowError("a bug")
        await real_run(self)

    monkeypatch.setattr(Router, "run", flaky)

    async def main() -> Any:
        async with Companion(Store(tmp_path / "c.sqlite3"), BleConfig(), None, name="Mum") as c:
            for _ in range(100):
                if len(runs) >= 2:
                    break
                await asyncio.sleep(0.02)
            task = c._tasks["router"]  # pyright: ignore[reportPrivateUsage]
            return len(runs), task.done()

    with caplog.at_level(logging.ERROR, logger="hugapp.companion"):
        n, done = run(main(), timeout=30)
    assert n == 2
    assert not done
    assert any("router failed; starting it again" in r.getMessage() for r in caplog.records)


def test_a_companion_task_that_loses_a_cancel_still_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's wait_for can swallow a cancel that arrives as its inner call completes; a band
    link's reconnect loop that lost it ran on after stop() and hung a world's teardown for minutes."""
    from hugapp.core.bandlink import BleConfig
    from hugapp.core.companion import Companion
    from hugapp.core.router import Router
    from hugapp.core.store import Store

    cancels: list[int] = []

    async def deaf_once(_self: Router) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancels.append(1)
                if len(cancels) > 1:
                    raise  # the second cancel is heard

    monkeypatch.setattr(Router, "run", deaf_once)

    async def main() -> bool:
        c = Companion(Store(tmp_path / "c.sqlite3"), BleConfig(), None, name="Mum")
        c.start()
        await asyncio.sleep(0.05)
        task = c._tasks["router"]  # pyright: ignore[reportPrivateUsage]
        await asyncio.wait_for(c.stop(), 10)
        return task.done()

    assert run(main(), timeout=30)
    assert len(cancels) == 2
