"""Keeping the companion alive, behind a facade with a desktop fallback (notifications and vibration
are ``hugapp.core.notify``'s facade).

On Android the companion runs in a foreground service (``hugapp.service``, declared in buildozer.spec as
``services = Hugservice:...:foreground:sticky:foregroundServiceType=connectedDevice``), the only owner
of the Companion, so hugs arrive with the screen off; the window is its client (``hugapp.window_link``).
The app asks once to be exempt from battery optimisation. On a desktop or gateway the process simply keeps
running: every call here is a no-op that returns at once. Android calls go through pyjnius, imported
only on Android; a failing platform call is logged and never stops the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any

from hugapp.core.notify import detect_platform

log = logging.getLogger("hugapp.ui.platform")

ANDROID_PACKAGE = "org.hugbutton.hugbutton"  # package.domain + "." + package.name in buildozer.spec
SERVICE_CLASS = ANDROID_PACKAGE + ".ServiceHugservice"  # p4a names it Service + the capitalised name


class BackgroundService:
    """Desktop fallback: nothing to start, nothing to ask."""

    platform = "desktop"

    def __init__(self) -> None:
        self.started = False

    def start(self, argument: str = "") -> None:
        """Start the background service that keeps the companion running (idempotent); ``argument``
        reaches it as ``PYTHON_SERVICE_ARGUMENT``."""
        self.started = True

    def stop(self) -> None:
        self.started = False

    def shut_down(self) -> None:
        """Stop the background service even where it outlives the window (the phone is the class hub
        now: the family's companion must not serve its bands beside the hub)."""
        self.started = False

    def request_battery_exemption(self) -> bool:
        """Ask the OS not to stop the companion to save battery; True if it is (now) exempt."""
        return False

    async def request_permissions(self) -> bool:
        """Ask for the runtime permissions the service needs before it starts; True if granted."""
        return True


# Android 12+ asks for these at run time; Android 14 refuses a connectedDevice foreground service
# until one of the Bluetooth ones is granted, so they are asked before the service starts.
RUNTIME_PERMISSIONS = ("BLUETOOTH_SCAN", "BLUETOOTH_CONNECT", "POST_NOTIFICATIONS")


class AndroidBackgroundService(BackgroundService):  # pragma: no cover - runs on Android only
    platform = "android"

    def _jnius(self) -> Any:
        import jnius  # pyright: ignore[reportMissingImports]

        return jnius

    def _activity(self) -> Any:
        return self._jnius().autoclass("org.kivy.android.PythonActivity").mActivity

    def start(self, argument: str = "") -> None:
        try:
            service = self._jnius().autoclass(SERVICE_CLASS)
            service.start(self._activity(), argument)
            self.started = True
        except Exception as exc:  # noqa: BLE001 - the UI keeps working without the service
            log.warning("could not start the background service: %r", exc)

    def stop(self) -> None:
        pass  # the service outlives the screen on purpose: hugs arrive with the app closed

    def shut_down(self) -> None:
        try:  # python-for-android's Service class: stopService, and the service's process ends
            self._jnius().autoclass(SERVICE_CLASS).stop(self._activity())
            self.started = False
        except Exception as exc:  # noqa: BLE001 - the service also declines to start in hub mode
            log.warning("could not stop the background service: %r", exc)

    async def request_permissions(self) -> bool:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()

        def answered(_permissions: Any, grants: Any) -> None:  # called on an Android thread
            ok = bool(grants) and all(bool(g) for g in grants)
            loop.call_soon_threadsafe(lambda: answer.done() or answer.set_result(ok))

        try:
            perms: Any = importlib.import_module("android.permissions")  # python-for-android's
            wanted = ["android.permission." + p for p in RUNTIME_PERMISSIONS]
            if all(bool(perms.check_permission(p)) for p in wanted):
                return True
            perms.request_permissions(wanted, answered)
            return await answer
        except Exception as exc:  # noqa: BLE001 - asking is best effort; the service reports what fails
            log.warning("could not ask for permissions: %r", exc)
            return False

    def request_battery_exemption(self) -> bool:
        try:
            jnius = self._jnius()
            activity = self._activity()
            context = jnius.autoclass("android.content.Context")
            power = activity.getSystemService(context.POWER_SERVICE)
            if power.isIgnoringBatteryOptimizations(ANDROID_PACKAGE):
                return True
            intent_cls = jnius.autoclass("android.content.Intent")
            settings = jnius.autoclass("android.provider.Settings")
            uri = jnius.autoclass("android.net.Uri")
            intent = intent_cls(settings.ACTION_REQUEST_IGNORE_BATTERY_OPTIMIZATIONS)
            intent.setData(uri.parse("package:" + ANDROID_PACKAGE))
            activity.startActivity(intent)
        except Exception as exc:  # noqa: BLE001 - asking is best effort; the app works without it
            log.warning("could not ask for the battery exemption: %r", exc)
        return False


def make_service(platform: str | None = None) -> BackgroundService:
    plat = detect_platform() if platform is None else platform
    return AndroidBackgroundService() if plat == "android" else BackgroundService()


def window_problem(env: Mapping[str, str] | None = None) -> str:
    """Why no window can open here, in one sentence; "" when one can. Needed because SDL, finding no
    display on Linux, silently opens an invisible offscreen window instead of failing."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or detect_platform() == "android":
        return ""
    wayland = env.get("WAYLAND_DISPLAY", "")
    if wayland:
        path = wayland if wayland.startswith("/") else os.path.join(env.get("XDG_RUNTIME_DIR", ""), wayland)
        if _answers(socket.AF_UNIX, path):
            return ""
    display = env.get("DISPLAY", "")
    if display and _x_answers(display):
        return ""
    if not display and not wayland:
        return "there is no display to open a window on (DISPLAY is not set)"
    return f"the display {display or wayland} does not answer, so no window can open"


def _x_answers(display: str) -> bool:
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        return _answers(socket.AF_UNIX, path) or _answers(socket.AF_UNIX, "\0" + path)  # or abstract
    if host.startswith("/"):  # a launchd socket path (XQuartz)
        return _answers(socket.AF_UNIX, display)
    return _answers(socket.AF_INET, (host, 6000 + int(number)))


def _answers(family: int, address: str | tuple[str, int]) -> bool:
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        s.connect(address)
        return True
    return False
