#!/usr/bin/env python3
"""Hug Button developer entry point. Needs only Python >= 3.11 and Node.js (with npm).

    python3 dev.py demo [ARGS...]      set up, then run `hugbutton demo ARGS...`
    python3 dev.py test [--strict] [PYTEST ARGS...]
                                       set up, then run the whole test suite (pytest, 4 workers:
                                       HUG_TEST_WORKERS=N or -n N to change); --strict (or
                                       HUG_STRICT=1) turns every skipped test into a failure
    python3 dev.py bench [NAME...]     set up, then run the benchmarks (latency, scale, band, x25519,
                                       hub, class; all by default): figures saved in tests/bench/results/
    python3 dev.py setup               only create/refresh .venv and node_modules
    python3 dev.py lock                re-resolve the Python lock files from pyproject.toml

Setup is idempotent and takes well under a second when nothing changed: .venv remembers a hash of
the lock files + pyproject.toml and is only re-synced (exactly to the lock, extra packages removed)
when they change; node_modules is refreshed with `npm ci` when package-lock.json changes.

Adding a Python dependency: add `name==version` to [project].dependencies (runtime) or to the `dev`
extra (tools) in pyproject.toml, then run `python3 dev.py lock` and commit pyproject.toml +
requirements*.lock. The next `dev.py` run installs it. Node dependency: `npm install --save-exact X`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
VPY = BIN / ("python.exe" if os.name == "nt" else "python")
LOCK = ROOT / "requirements.lock"
STUBS_LOCK = ROOT / "requirements-mpstubs.lock"
# MicroPython type stubs live outside site-packages (see pyproject.toml, extra `micropython-stubs`).
STUBS_DIR = VENV / "micropython-stubs"
STAMP = VENV / ".hugbutton-setup"
NPM_STAMP = ROOT / "node_modules" / ".hugbutton-setup"
UV_VERSION = "0.13.9"  # only used by `dev.py lock`, in a throwaway venv
LOCK_PYTHON = "3.11"  # oldest supported Python; the lock is universal (all platforms)
STUBS_EXTRA = "micropython-stubs"
# Bumped when the setup procedure itself changes, so existing venvs get re-synced.
SETUP_VERSION = "1"
# pytest-xdist workers for `dev.py test` (CI machines have 2 cores; the tests mostly wait).
TEST_WORKERS = 4
# Packages that belong to the venv itself rather than to the lock.
VENV_OWN = {"pip", "setuptools", "wheel", "hugbutton"}


def say(msg: str) -> None:
    print(f"dev.py: {msg}", flush=True)


def die(msg: str) -> None:
    print(f"dev.py: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def run(cmd: list[str | Path], **kw: object) -> None:
    args = [str(c) for c in cmd]
    try:
        subprocess.run(args, check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]
    except subprocess.CalledProcessError as e:
        die(f"command failed (exit {e.returncode}): {' '.join(args)}")
    except FileNotFoundError:
        die(f"command not found: {args[0]}")


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------- Python


def python_stamp() -> str:
    for f in (LOCK, STUBS_LOCK):
        if not f.exists():
            die(f"{f.name} is missing: run `python3 dev.py lock`")
    return digest(
        SETUP_VERSION.encode(),
        sys.version.encode(),
        LOCK.read_bytes(),
        STUBS_LOCK.read_bytes(),
        (ROOT / "pyproject.toml").read_bytes(),
    )


def locked_names(lock: Path) -> set[str]:
    names: set[str] = set()
    for line in lock.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith(("#", "-")):
            names.add(canonical(line.split("==")[0].split(";")[0].strip()))
    return names


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def setup_python() -> None:
    if VPY.exists():
        probe = subprocess.run(
            [str(VPY), "-c", "import sys; print(sys.version_info[:2] >= (3, 11))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() != "True":
            say("existing .venv is broken or too old; recreating it")
            shutil.rmtree(VENV)
    stamp = python_stamp()
    if VPY.exists() and STAMP.exists() and STAMP.read_text().strip() == stamp:
        return
    say("setting up Python environment (.venv)...")
    if not VPY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [VPY, "-m", "pip", "--disable-pip-version-check", "-q"]
    say("installing locked Python packages...")
    run([*pip, "install", "--require-hashes", "--no-deps", "-r", LOCK])
    # Make the venv match the lock exactly: drop packages that are no longer locked.
    listed = subprocess.run(
        [str(VPY), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    extra = sorted(
        d["name"]
        for d in json.loads(listed.stdout)
        if canonical(d["name"]) not in locked_names(LOCK) | VENV_OWN
    )
    if extra:
        say(f"removing packages not in the lock: {', '.join(extra)}")
        run([*pip, "uninstall", "-y", *extra])
    say("installing MicroPython type stubs into .venv/micropython-stubs...")
    shutil.rmtree(STUBS_DIR, ignore_errors=True)
    run([*pip, "install", "--require-hashes", "--no-deps", "--target", STUBS_DIR, "-r", STUBS_LOCK])
    say("installing the project (editable)...")
    run([*pip, "install", "--no-deps", "-e", ROOT])
    STAMP.write_text(stamp + "\n")


# ------------------------------------------------------------------------------------------- Node


def setup_node() -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        die(
            "Node.js and npm are required (they run real MicroPython for the conformance tests). "
            "Install Node.js >= 18 (e.g. `apt-get install nodejs npm`) and retry."
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
    try:
        major = int(version.strip().lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < 18:
        die(f"Node.js >= 18 is required, found {version.strip() or 'unknown'}")
    lock = ROOT / "package-lock.json"
    stamp = digest(lock.read_bytes(), (ROOT / "package.json").read_bytes(), version.encode())
    if NPM_STAMP.exists() and NPM_STAMP.read_text().strip() == stamp:
        return
    say("installing Node.js packages (npm ci)...")
    run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"])
    NPM_STAMP.write_text(stamp + "\n")


def setup() -> None:
    setup_python()
    setup_node()


# ------------------------------------------------------------------------------------------- lock


def lock() -> None:
    """Resolve pyproject's dependencies (+ dev extra) and the stubs extra into hashed lock files."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    main_reqs = [*project.get("dependencies", []), *extras.get("dev", [])]
    stub_reqs = list(extras.get(STUBS_EXTRA, []))
    with tempfile.TemporaryDirectory(prefix="hug-lock-") as tmp:
        tmpdir = Path(tmp)
        say(f"creating a throwaway venv with uv {UV_VERSION}...")
        venv.EnvBuilder(with_pip=True).create(tmpdir / "venv")
        tbin = tmpdir / "venv" / ("Scripts" if os.name == "nt" else "bin")
        run(
            [
                tbin / "python",
                "-m",
                "pip",
                "-q",
                "--disable-pip-version-check",
                "install",
                f"uv=={UV_VERSION}",
            ]
        )
        for reqs, out in ((main_reqs, LOCK), (stub_reqs, STUBS_LOCK)):
            src = tmpdir / (out.stem + ".in")
            src.write_text("".join(r + "\n" for r in reqs))
            say(f"resolving {out.name}...")
            run(
                [
                    tbin / "uv",
                    "pip",
                    "compile",
                    "--quiet",
                    "--universal",
                    "--python-version",
                    LOCK_PYTHON,
                    "--generate-hashes",
                    "--custom-compile-command",
                    "python3 dev.py lock",
                    "--annotation-style=line",
                    src,
                    "-o",
                    out,
                ]
            )
            # uv records the temporary input path; keep the file stable across machines.
            out.write_text(out.read_text().replace(str(src), f"pyproject.toml ({out.stem})"))
    say("lock files written; the next dev.py run installs them")


# ------------------------------------------------------------------------------------------- main


def exec_in_venv(argv: list[str], env: dict[str, str] | None = None) -> None:
    env = dict(os.environ if env is None else env)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(VENV)
    env.pop("PYTHONHOME", None)
    sys.stdout.flush()
    if os.name == "nt":
        sys.exit(subprocess.run(argv, env=env, cwd=ROOT, check=False).returncode)
    os.chdir(ROOT)
    try:
        os.execve(argv[0], argv, env)
    except FileNotFoundError:
        die(f"{argv[0]} does not exist (is the project installed? try `python3 dev.py setup`)")


def parallel(args: list[str]) -> list[str]:
    """pytest-xdist options for the whole suite: most tests wait on processes, sockets and timers, so
    more workers than cores pay off (tests/conftest.py keeps shared runs together and lets a timing
    test run alone). HUG_TEST_WORKERS=N sets the count; an explicit -n, or -p no:xdist, wins."""
    if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args) or "no:xdist" in args:
        return []
    return ["-n", os.environ.get("HUG_TEST_WORKERS", str(TEST_WORKERS)), "--dist", "loadgroup"]


def main(argv: list[str]) -> None:
    if sys.version_info < (3, 11):
        die(f"Python >= 3.11 is required, this is {sys.version.split()[0]}")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        sys.exit(0 if argv else 2)
    cmd, rest = argv[0], argv[1:]
    if cmd == "lock":
        lock()
    elif cmd == "setup":
        setup()
        say("environment is ready")
    elif cmd == "test":
        env = dict(os.environ)
        if "--strict" in rest:
            rest = [a for a in rest if a != "--strict"]
            env["HUG_STRICT"] = "1"
        setup()
        say("running tests" + (" (strict: skips count as failures)" if env.get("HUG_STRICT") == "1" else ""))
        exec_in_venv([str(VPY), "-m", "pytest", *parallel(rest), *rest], env)
    elif cmd == "demo":
        setup()
        say("starting the demo")
        exec_in_venv([str(BIN / "hugbutton"), "demo", *rest])
    elif cmd == "bench":
        setup()
        say("running benchmarks (not tests): " + (" ".join(rest) or "all"))
        exec_in_venv([str(VPY), str(ROOT / "tests" / "bench" / "run.py"), *rest])
    else:
        die(f"unknown command {cmd!r} (expected demo, test, bench, setup or lock; see --help)")


if __name__ == "__main__":
    main(sys.argv[1:])
