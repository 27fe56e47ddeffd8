"""The notification facade (hugapp.core.notify): platform choice, the desktop fallback's
record of what the user saw, and platform calls that fail or hang without hurting the app."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from hugapp.core.notify import (
    MAX_HANGS,
    DesktopNotifier,
    PlyerNotifier,
    Shown,
    detect_platform,
    make_notifier,
)


@pytest.mark.parametrize(
    ("environ", "sys_platform", "expected"),
    [
        ({}, "linux", "linux"),
        ({}, "freebsd13", "linux"),
        ({}, "win32", "win"),
        ({}, "darwin", "macosx"),
        ({"ANDROID_ARGUMENT": "/data/app"}, "linux", "android"),
        ({"ANDROID_ROOT": "/system"}, "linux", "android"),
        ({"KIVY_BUILD": "ios"}, "darwin", "ios"),
        ({}, "sunos5", "unknown"),
    ],
)
def test_detect_platform(environ: dict[str, str], sys_platform: str, expected: str) -> None:
    assert detect_platform(environ, sys_platform) == expected


def test_factory_picks_by_platform() -> None:
    desktop = make_notifier("linux")
    assert type(desktop) is DesktopNotifier
    android = make_notifier("android")
    try:
        assert isinstance(android, PlyerNotifier)
    finally:
        android.close()
    popups = make_notifier("linux", popups=True)
    try:
        assert isinstance(popups, PlyerNotifier)
    finally:
        popups.close()


def test_desktop_fallback_records_what_the_user_would_have_seen() -> None:
    n = make_notifier("linux")
    n.notify("Hug from Sam", "3 taps")
    assert n.notifications() == [Shown("Hug from Sam", "3 taps")]
    n.close()


def test_history_is_bounded() -> None:
    n = DesktopNotifier(history=5)
    for i in range(12):
        n.notify("hug", str(i))
    assert [s.message for s in n.notifications()] == ["7", "8", "9", "10", "11"]


class FakeNotification:
    def __init__(self, error: Exception | None = None, block: threading.Event | None = None) -> None:
        self.calls: list[dict[str, object]] = []
        self.error = error
        self.block = block
        self.entered = threading.Event()

    def notify(self, *, title: str, message: str, app_name: str, timeout: int) -> None:
        self.entered.set()
        if self.block is not None:
            self.block.wait(10)
        self.calls.append({"title": title, "message": message, "app_name": app_name})
        if self.error is not None:
            raise self.error


def test_plyer_notifier_calls_the_facades() -> None:
    note = FakeNotification()
    n = PlyerNotifier("android", notification=note)
    try:
        n.notify("Hug back", "from Mum")
        assert n.wait_idle(5)
        assert note.calls == [{"title": "Hug back", "message": "from Mum", "app_name": "Hug Button"}]
        assert n.completed == 1
        assert n.failures == 0
        assert list(n.shown) == [Shown("Hug back", "from Mum")]
    finally:
        n.close()


def test_platform_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    note = FakeNotification(error=RuntimeError("no notification service"))
    n = PlyerNotifier("android", notification=note)
    try:
        n.notify("Hug", "from Dad")  # must not raise
        assert n.wait_idle(5)
        assert n.failures == 1
        assert n.notifications() == [Shown("Hug", "from Dad")]  # still visible in the app
        assert any("no notification service" in r.getMessage() for r in caplog.records)
    finally:
        n.close()


def test_hanging_platform_call_never_blocks_and_is_abandoned() -> None:
    release = threading.Event()
    note = FakeNotification(block=release)
    n = PlyerNotifier("android", notification=note, call_timeout_s=0.05)
    try:
        started = time.monotonic()
        n.notify("first", "hangs")
        assert time.monotonic() - started < 0.05  # returns at once although the call hangs
        for i in range(MAX_HANGS):
            assert note.entered.wait(5)  # the worker is inside the (hanging) call
            note.entered.clear()
            time.sleep(0.1)
            n.notify("next", str(i))  # finds the worker stuck: abandons it, starts another
        assert n.hangs == MAX_HANGS
        assert n.given_up
        n.notify("after", "giving up")
        assert n.dropped >= 1
        assert len(n.notifications()) == MAX_HANGS + 2  # every one recorded for the app
    finally:
        release.set()
        n.close()


def test_full_queue_drops_and_counts() -> None:
    release = threading.Event()
    note = FakeNotification(block=release)
    n = PlyerNotifier("android", notification=note, call_timeout_s=60)
    try:
        for i in range(50):
            n.notify("hug", str(i))
        assert n.dropped > 0
        release.set()
        assert n.wait_idle(5)
        assert len(note.calls) + n.dropped == 50
    finally:
        release.set()
        n.close()


def test_notify_from_the_event_loop_does_not_block_it() -> None:
    release = threading.Event()
    n = PlyerNotifier("android", notification=FakeNotification(block=release))

    async def main() -> float:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        n.notify("hug", "while the loop runs")
        await asyncio.sleep(0.2)
        task.cancel()
        return ticks

    try:
        assert asyncio.run(main()) >= 5
    finally:
        release.set()
        n.close()


@pytest.mark.filterwarnings("ignore::UserWarning")  # plyer warns that dbus / notify-send are missing
def test_real_plyer_on_this_desktop_never_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """plyer on Linux may lack notify-send or dbus: nothing may escape."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no notify-send, no gdbus: the failure path, deterministically
    n = PlyerNotifier("linux")  # plyer's own facade
    try:
        n.notify("Hug", "real plyer")
        assert n.wait_idle(10)
        assert n.completed == 0
        assert n.failures == 1  # neither notify-send nor gdbus on the PATH
        assert list(n.shown) == [Shown("Hug", "real plyer")]
    finally:
        n.close()
