"""Keeping the companion alive, behind a facade with a desktop fallback (notifications and vibration
are ``hugapp.core.notify``'s facade).

On Android the core runs in a foreground service (``hugapp.service``, declared in buildozer.spec as
``services = Hugcore:...:foreground:sticky``) so hugs arrive with the screen off, and the app asks
once to be exempt from battery optimisation. On a desktop or gateway the process simply keeps
running: every call here is a no-op that returns at once. Android calls go through pyjnius, imported
only on Android; a failing platform call is logged and never stops the app.
"""

from __future__ import annotations

import logging
from typing import Any

from hugapp.core.notify import detect_platform

log = logging.getLogger("hugapp.ui.platform")

ANDROID_PACKAGE = "org.hugbutton.hugbutton"  # package.domain + "." + package.name in buildozer.spec
SERVICE_CLASS = ANDROID_PACKAGE + ".ServiceHugcore"  # p4a names it Service + the capitalised name


class ServiceControl:
    """Desktop fallback: nothing to start, nothing to ask."""

    platform = "desktop"

    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        """Start the background service that keeps the core running (idempotent)."""
        self.started = True

    def stop(self) -> None:
        self.started = False

    def request_battery_exemption(self) -> bool:
        """Ask the OS not to stop the companion to save battery; True if it is (now) exempt."""
        return False


class AndroidServiceControl(ServiceControl):  # pragma: no cover - runs on Android only
    platform = "android"

    def _jnius(self) -> Any:
        import jnius  # pyright: ignore[reportMissingImports]

        return jnius

    def _activity(self) -> Any:
        return self._jnius().autoclass("org.kivy.android.PythonActivity").mActivity

    def start(self) -> None:
        try:
            service = self._jnius().autoclass(SERVICE_CLASS)
            service.start(self._activity(), "")
            self.started = True
        except Exception as exc:  # noqa: BLE001 - the UI keeps working without the service
            log.warning("could not start the background service: %r", exc)

    def stop(self) -> None:
        pass  # the service outlives the screen on purpose: hugs arrive with the app closed

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


def make_service(platform: str | None = None) -> ServiceControl:
    plat = detect_platform() if platform is None else platform
    return AndroidServiceControl() if plat == "android" else ServiceControl()
