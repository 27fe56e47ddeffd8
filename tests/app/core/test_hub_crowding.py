"""A hub holds few links: while other bands wait for one, its answers say "busy" and owners let an idle
link go after CROWDED_RELEASE_S instead of IDLE_RELEASE_S (the class-wide burst, `bench class`)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any, cast

import pytest
from bleak.exc import BleakError
from relaykit import FakeClock

from hugapp.core.bandlink import CROWDED_RELEASE_S, IDLE_RELEASE_S, BandLink, BleConfig
from hugapp.core.hub import ADVERT_FRESH_S, CROWDED_S, Hub, HubStore
from hugapp.core.hubtunnel import DOWN, UP, HubTunnel, Tunnel
from hugapp.core.store import Store


def _hub(tmp_path: Path, clock: FakeClock, bands: int) -> Hub:
    store = HubStore(tmp_path / "hub", clock)
    for _ in range(bands):
        store.add(secrets.token_bytes(32), secrets.token_bytes(16))
    hub = Hub(store, "mqtt://127.0.0.1:1", BleConfig(), clock=clock)
    hub._reload()  # pyright: ignore[reportPrivateUsage]
    return hub


def test_a_hub_is_crowded_while_another_band_waits_without_a_link(tmp_path: Path) -> None:
    clock = FakeClock()
    hub = _hub(tmp_path, clock, 3)
    a, b, c = hub.served.values()
    crowded = hub._crowded  # pyright: ignore[reportPrivateUsage]
    assert not crowded(a)
    b.heard = cast(Any, (None, None, clock()))
    assert not crowded(a), "heard, nothing waiting"
    b.waiting = True
    assert crowded(a), "b's advert says a press waits and b has no link"
    assert not crowded(b), "b itself is not kept waiting by its own owner"
    b.link = "l1"
    assert not crowded(a), "b has its link"
    b.link = ""
    clock.advance(ADVERT_FRESH_S + 1)
    assert not crowded(a), "b not heard lately: gone, not waiting here"
    c.heard = cast(Any, (None, None, clock()))
    assert not crowded(a)


class _FullRadio:
    """A BleakClient whose radio holds all the links it can."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        pass

    async def connect(self) -> None:
        raise BleakError("connect failed: the radio holds 7 links")


def test_a_failed_connect_keeps_the_hub_crowded_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    hub = _hub(tmp_path, clock, 2)
    a, b = hub.served.values()
    device = cast(Any, type("Device", (), {"address": "C0:FF:EE:00:00:01"})())
    b.heard = (device, cast(Any, None), clock())
    monkeypatch.setattr("hugapp.core.hub.BleakClient", _FullRadio)

    async def refused() -> None:
        with pytest.raises(BleakError):
            await hub._connect(b, device.address, 0.5)  # pyright: ignore[reportPrivateUsage]

    asyncio.run(refused())
    assert hub._crowded(a)  # pyright: ignore[reportPrivateUsage]
    assert not hub._crowded(b), "b's own owner is not asked to make room for b"  # pyright: ignore[reportPrivateUsage]
    clock.advance(CROWDED_S + 0.1)
    assert not hub._crowded(a)  # pyright: ignore[reportPrivateUsage]
    hub.store.close()


def test_each_answer_from_the_hub_says_whether_it_is_crowded() -> None:
    key = secrets.token_bytes(32)
    tunnel = HubTunnel("mqtt://127.0.0.1:1", key)
    hub_side = Tunnel(key, UP)
    assert Tunnel(key, DOWN).out_topic == hub_side.in_topic
    assert not tunnel.crowded()
    tunnel._dispatch(hub_side.seal({"t": "re", "i": "1", "busy": 1}))  # pyright: ignore[reportPrivateUsage]
    assert tunnel.crowded()
    crowded = tunnel.config().crowded
    assert crowded is not None
    assert crowded(), "what BandLink asks"
    tunnel._dispatch(hub_side.seal({"t": "re", "i": "2"}))  # pyright: ignore[reportPrivateUsage]
    assert not tunnel.crowded(), "the next answer says room again"
    forged = Tunnel(secrets.token_bytes(32), UP).seal({"t": "re", "i": "3", "busy": 1})
    tunnel._dispatch(forged)  # pyright: ignore[reportPrivateUsage]
    assert not tunnel.crowded(), "only the hub's own sealed answers count"


@pytest.mark.parametrize("crowded", [True, False])
def test_an_idle_link_through_a_crowded_hub_is_let_go_sooner(tmp_path: Path, crowded: bool) -> None:
    link = BandLink(Store(tmp_path / "phone.sqlite3"), "band", BleConfig())
    route = BleConfig(via="hub", crowded=lambda: crowded)

    async def idle_after(quiet: float) -> bool:
        link._active_at = time.monotonic() - quiet  # pyright: ignore[reportPrivateUsage]
        try:
            await asyncio.wait_for(link._idle(route), 0.6)  # pyright: ignore[reportPrivateUsage]
        except TimeoutError:
            return False
        return True

    quiet = CROWDED_RELEASE_S + 0.5  # well under IDLE_RELEASE_S
    assert quiet + 0.6 < IDLE_RELEASE_S
    assert asyncio.run(idle_after(quiet)) is crowded
