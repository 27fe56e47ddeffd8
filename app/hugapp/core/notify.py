"""Phone notifications behind one facade, with a desktop fallback.

On Android, :class:`PlyerNotifier` shows notifications through plyer's ``notification`` facade.
Everywhere else :class:`DesktopNotifier` logs a line and keeps what a user
would have seen in :attr:`Notifier.shown`, so the app (a history screen, the headless gateway) and the
tests can see it. ``make_notifier()`` picks one for the platform, detected like ``kivy.utils.platform``
but without importing Kivy.

A platform call never crashes the app and never blocks the event loop: plyer runs on one worker
thread fed by a bounded queue (when full, the newest request is dropped and counted); a call that
raises is logged and counted; a call that hangs longer than ``call_timeout_s`` is abandoned (its daemon
thread is left behind and a fresh worker takes over), and after ``MAX_HANGS`` hangs plyer is given up
for the session. ``notify()`` returns at once, from any thread or coroutine. (Keeping the companion
alive in the background is ``hugapp.ui.platform``'s ServiceControl; the band, not the phone, buzzes.)
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

APP_NAME = "Hug Button"
HISTORY = 200  # entries kept in Notifier.shown
QUEUE_SIZE = 32  # platform calls waiting for the worker
CALL_TIMEOUT_S = 5.0
MAX_HANGS = 3

Platform = Literal["android", "ios", "win", "macosx", "linux", "unknown"]


@dataclass(frozen=True, slots=True)
class Shown:
    """One notification the user was shown."""

    title: str
    message: str


class NotificationFacade(Protocol):
    def notify(self, *, title: str, message: str, app_name: str, timeout: int) -> None: ...


def detect_platform(environ: Mapping[str, str] | None = None, sys_platform: str | None = None) -> Platform:
    """The platform name as ``kivy.utils.platform`` spells it, from the environment and ``sys.platform``."""
    env = os.environ if environ is None else environ
    plat = sys.platform if sys_platform is None else sys_platform
    if "ANDROID_ARGUMENT" in env or "ANDROID_ROOT" in env or "P4A_BOOTSTRAP" in env:
        return "android"
    if env.get("KIVY_BUILD") == "ios" or plat == "ios":
        return "ios"
    if plat in ("win32", "cygwin"):
        return "win"
    if plat == "darwin":
        return "macosx"
    if plat.startswith(("linux", "freebsd")):
        return "linux"
    return "unknown"


class Notifier:
    """What the app uses to reach the user outside the band: ``notify``. This base is the desktop
    fallback: it logs and records only."""

    def __init__(self, platform: str = "desktop", history: int = HISTORY) -> None:
        self.platform = platform
        self.shown: deque[Shown] = deque(maxlen=history)
        self._lock = threading.Lock()

    def _record(self, item: Shown) -> None:
        with self._lock:
            self.shown.append(item)

    def notify(self, title: str, message: str) -> None:
        """Show a notification. Returns at once; never raises for a platform failure."""
        item = Shown(str(title), str(message))
        self._record(item)
        log.info("notification: %s: %s", item.title, item.message)
        self._platform_notify(item)

    def close(self) -> None:
        """Stop background work (nothing to stop here)."""

    def notifications(self) -> list[Shown]:
        """The notifications shown so far, oldest first (bounded by ``history``)."""
        with self._lock:
            return list(self.shown)

    # subclasses reach the platform here
    def _platform_notify(self, item: Shown) -> None:
        pass


class DesktopNotifier(Notifier):
    """The desktop fallback: a log line and :attr:`shown`; no pop-ups."""


_Job = Callable[[], None]


class _Worker:
    """One daemon thread running platform calls from a bounded queue."""

    def __init__(self, name: str) -> None:
        self.jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self.started_at: float | None = None  # monotonic start of the call in progress
        self.outstanding = 0  # submitted and not yet finished
        self.done = threading.Condition()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> bool:
        with self.done:
            try:
                self.jobs.put_nowait(job)
            except queue.Full:
                return False
            self.outstanding += 1
            return True

    def wait_idle(self, timeout: float) -> bool:
        with self.done:
            return self.done.wait_for(lambda: self.outstanding == 0, timeout)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            self.started_at = time.monotonic()
            try:
                job()
            finally:
                self.started_at = None
                with self.done:
                    self.outstanding -= 1
                    self.done.notify_all()


class PlyerNotifier(Notifier):
    """Notifications through plyer (Android, or desktop pop-ups), recorded in :attr:`shown` as well.

    ``notification`` defaults to plyer's facade; pass another object (tests).
    """

    def __init__(
        self,
        platform: str = "android",
        notification: NotificationFacade | Literal["plyer"] | None = "plyer",
        call_timeout_s: float = CALL_TIMEOUT_S,
        history: int = HISTORY,
    ) -> None:
        super().__init__(platform, history)
        self._notification = _plyer_facade("notification") if notification == "plyer" else notification
        self.call_timeout_s = call_timeout_s
        self.completed = 0  # platform calls that returned
        self.failures = 0  # platform calls that raised
        self.hangs = 0  # platform calls abandoned after call_timeout_s
        self.dropped = 0  # requests dropped because the queue was full or plyer was given up
        self.given_up = False
        self._worker: _Worker | None = None
        self._closed = False

    def _platform_notify(self, item: Shown) -> None:
        facade = self._notification
        if facade is None:
            return
        self._submit(
            lambda: facade.notify(title=item.title, message=item.message, app_name=APP_NAME, timeout=10),
            "notification",
        )

    def _submit(self, call: _Job, what: str) -> None:
        with self._lock:
            if self._closed or self.given_up:
                self.dropped += 1
                return
            worker = self._current_worker()
            if worker is None:
                self.dropped += 1
                return

            def job() -> None:
                try:
                    call()
                    with self._lock:
                        self.completed += 1
                except Exception as exc:  # noqa: BLE001 - any platform failure: log it, count it, go on
                    with self._lock:
                        self.failures += 1
                    log.warning("%s through plyer failed: %s: %s", what, type(exc).__name__, exc)

            if not worker.submit(job):
                self.dropped += 1
                log.warning("%s dropped: %d platform calls already waiting", what, QUEUE_SIZE)

    def _current_worker(self) -> _Worker | None:
        """The live worker, replacing one stuck in a call for longer than call_timeout_s (lock held)."""
        worker = self._worker
        if worker is not None:
            started = worker.started_at
            if started is None or time.monotonic() - started <= self.call_timeout_s:
                return worker
            self.hangs += 1
            log.warning("a plyer call has hung for over %.1f s; abandoning it", self.call_timeout_s)
            self.dropped += _drain(worker)
            if self.hangs >= MAX_HANGS:
                self.given_up = True
                log.warning("plyer hung %d times; notifications are only recorded from now on", self.hangs)
                return None
        self._worker = _Worker(f"hugapp-notify-{self.hangs}")
        return self._worker

    def wait_idle(self, timeout: float = CALL_TIMEOUT_S) -> bool:
        """Block until every submitted platform call has finished; False on timeout. (Tests, shutdown.)"""
        worker = self._worker
        return True if worker is None else worker.wait_idle(timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            try:
                worker.jobs.put_nowait(None)
            except queue.Full:
                _drain(worker)


def _drain(worker: _Worker) -> int:
    """Empty an abandoned worker's queue and tell it to stop once its stuck call returns; return
    how many calls were dropped."""
    dropped = 0
    with worker.done:
        try:
            while True:
                worker.jobs.get_nowait()
                dropped += 1
                worker.outstanding -= 1
        except queue.Empty:
            pass
        worker.jobs.put_nowait(None)
    return dropped


def _plyer_facade(name: str) -> Any:
    """plyer's facade proxy ``name``, or None when plyer cannot be imported (then: record only)."""
    try:
        module = importlib.import_module("plyer")
        return getattr(module, name)
    except Exception as exc:  # noqa: BLE001 - a missing or broken plyer must not stop the app
        log.warning("plyer unavailable (%s: %s); %s is only recorded", type(exc).__name__, exc, name)
        return None


def make_notifier(platform: str | None = None, *, popups: bool = False) -> Notifier:
    """The notifier for ``platform`` (default: detected).

    Android: :class:`PlyerNotifier`. Desktop platforms: :class:`DesktopNotifier`, or with
    ``popups=True`` a :class:`PlyerNotifier` that shows desktop notifications through plyer
    (notify-send / dbus on Linux).
    """
    plat = detect_platform() if platform is None else platform
    if plat == "android":
        return PlyerNotifier(plat)
    if popups and plat in ("linux", "win", "macosx"):
        return PlyerNotifier(plat)
    return DesktopNotifier(plat)


__all__ = [
    "DesktopNotifier",
    "Notifier",
    "PlyerNotifier",
    "Shown",
    "detect_platform",
    "make_notifier",
]
