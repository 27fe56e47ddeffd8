"""CPython-side test kit: real MicroPython from pytest, dual-interpreter case modules, tool checks.

Imported by tests/conftest.py (which puts tests/mp on sys.path), so any test can do
``from testkit import require_tool, run_micropython, strict_mode``.

* ``run_micropython(code, packages=MP_PACKAGES, files=None, libs=(), timeout=120) -> str`` runs code
  in the official MicroPython WebAssembly build (via Node, tests/mp/run.mjs) with hugproto and
  hugband in /lib and returns its stdout; raises ``MicroPythonError`` (an AssertionError) carrying
  MicroPython's traceback if the code raises. The ``micropython`` fixture is this function.
* ``require_tool(name) -> str`` returns the tool's path or skips the test (a failure under
  HUG_STRICT=1, see tests/conftest.py).
* ``pytest_collect_file`` turns every ``*_cases.py`` into tests for both interpreters; the format of
  those modules is described in tests/mp/cases.py.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MP_DIR = REPO / "tests" / "mp"
RUNNER = MP_DIR / "run.mjs"
MP_NPM_PACKAGE = REPO / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
# MicroPython-compatible packages copied into /lib by default.
MP_PACKAGES: tuple[Path, ...] = (REPO / "protocol" / "hugproto", REPO / "firmware" / "hugband")
VECTORS = REPO / "tests" / "vectors"
# Where repo files (tests/vectors) appear inside MicroPython; cases.repo_path() knows it.
MP_REPO = "/repo"


def strict_mode() -> bool:
    """True when skipped tests must fail (HUG_STRICT=1: `dev.py test --strict` and CI)."""
    return os.environ.get("HUG_STRICT", "") == "1"


def require_tool(name: str) -> str:
    """Path of an external program (node, mosquitto, Xvfb, dbus-daemon...), or skip the test.

    Under HUG_STRICT=1 the skip is reported as a failure. Works in a test, a fixture or at module
    level (then the whole module is skipped).
    """
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"required tool {name!r} is not installed (not found on PATH)", allow_module_level=True)
    return path


# -------------------------------------------------------------------------------- strict mode


def pytest_report_header() -> str:
    return "strict mode: skipped tests fail (HUG_STRICT=1)" if strict_mode() else "strict mode: off"


def _strict_failure(longrepr: object) -> str:
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)  # pyright: ignore
    return f"skipped under strict mode (HUG_STRICT=1), which counts as a failure.\nSkip reason: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if strict_mode() and report.skipped and not hasattr(report, "wasxfail"):
        report.longrepr = _strict_failure(report.longrepr)
        report.outcome = "failed"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    if strict_mode() and report.skipped:
        report.longrepr = _strict_failure(report.longrepr)
        report.outcome = "failed"
    return report


# ------------------------------------------------------------------------------ real MicroPython


class MicroPythonError(AssertionError):
    """Code run under MicroPython raised (message: exception type, traceback, stdout)."""

    def __init__(self, message: str, stdout: str = "", stderr: str = "", returncode: int = 1) -> None:
        super().__init__(message)
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode


def micropython_unavailable() -> str | None:
    """Why real MicroPython cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "Node.js ('node') is not installed: needed to run real MicroPython"
    if not (MP_NPM_PACKAGE / "micropython.mjs").exists():
        return "the MicroPython npm package is not installed: run `python3 dev.py setup` (npm ci)"
    return None


def run_micropython(
    code: str,
    packages: Iterable[Path] = MP_PACKAGES,
    files: Mapping[str, str] | None = None,
    libs: Iterable[str] = (),
    timeout: float = 120,
    cwd: str | None = None,
) -> str:
    """Run ``code`` under real MicroPython and return what it printed.

    packages: host directories (or single .py files) copied to /lib/<name>; missing ones are ignored
    so tests work while a package is still being written. files: extra files {path: text}, relative
    paths land under /lib. libs: raw ``SRC[:DEST]`` specs for run.mjs. tests/vectors is always
    available at /repo/tests/vectors. Skips the test if Node or the npm package is missing.
    """
    why = micropython_unavailable()
    if why is not None:
        pytest.skip(why)
    args: list[str] = []
    for p in packages:
        if Path(p).exists():
            args += ["--lib", str(p)]
    if VECTORS.is_dir():
        args += ["--lib", f"{VECTORS}:{MP_REPO}/tests/vectors"]
    for spec in libs:
        args += ["--lib", spec]
    if cwd is not None:
        args += ["--cwd", cwd]
    with tempfile.TemporaryDirectory(prefix="hug-mp-") as tmp:
        if files:
            fmap = Path(tmp) / "files.json"
            fmap.write_text(json.dumps(dict(files)))
            args += ["--files-json", str(fmap)]
        try:
            proc = subprocess.run(
                ["node", str(RUNNER), *args, "-c", code],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=REPO,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise MicroPythonError(f"MicroPython run timed out after {timeout} s") from e
    if proc.returncode != 0:
        raise MicroPythonError(
            f"MicroPython run failed (exit {proc.returncode}):\n{proc.stderr.rstrip()}"
            + (f"\n--- stdout ---\n{proc.stdout.rstrip()}" if proc.stdout.strip() else ""),
            stdout=proc.stdout,
            stderr=proc.stderr,
            returncode=proc.returncode,
        )
    return proc.stdout


# ------------------------------------------------------------------------ dual-interpreter cases

_RESULT = re.compile(r"^(PASS|FAIL) (case_\w+)(?:: (.*))?$")
_SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


def parse_case_output(stdout: str) -> tuple[dict[str, str | None], tuple[int, int] | None]:
    """Parse cases.run() output: {case: None if passed else failure text}, (passed, failed) summary."""
    results: dict[str, str | None] = {}
    summary: tuple[int, int] | None = None
    current: str | None = None
    for line in stdout.splitlines():
        m = _RESULT.match(line)
        if m:
            kind, name, detail = m.groups()
            results[name] = None if kind == "PASS" else (detail or "")
            current = name if kind == "FAIL" else None
            continue
        if current is not None and line.startswith("    "):
            results[current] = f"{results[current]}\n{line[4:]}"
            continue
        current = None
        s = _SUMMARY.match(line)
        if s:
            summary = (int(s.group(1)), int(s.group(2)))
    return results, summary


class CaseFailed(Exception):
    """A case failed under MicroPython (the message holds MicroPython's report)."""


def _literal_list(tree: ast.Module, name: str) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"{name} must be a literal list of strings")
            return list(value)  # pyright: ignore[reportUnknownArgumentType]
    return []


class CaseModule(pytest.File):
    """A ``*_cases.py`` file: every case_* function, once under CPython and once under MicroPython."""

    _module: Any = None
    _import_error: BaseException | None = None
    _mp_result: tuple[dict[str, str | None], str] | None = None
    _mp_error: BaseException | None = None

    def collect(self) -> Iterator[CaseItem]:
        tree = ast.parse(self.path.read_text(), filename=str(self.path))
        self.mp_libs = _literal_list(tree, "MP_LIBS")
        cases = sorted(
            (node.name, node.lineno)
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("case_")
        )
        for impl in ("cpython", "micropython"):
            for name, lineno in cases:
                item = CaseItem.from_parent(self, name=f"{name}[{impl}]", case=name, impl=impl, lineno=lineno)
                item.add_marker(impl)
                yield item

    # CPython half --------------------------------------------------------------------------------
    def cpython_module(self) -> Any:
        if self._module is None and self._import_error is None:
            for d in (str(MP_DIR), str(self.path.parent)):
                if d not in sys.path:
                    sys.path.insert(0, d)
            name = self.path.stem
            try:
                if name not in sys.modules:
                    pytest.register_assert_rewrite(name)
                module = importlib.import_module(name)
                if Path(module.__file__ or "").resolve() != self.path.resolve():
                    raise ImportError(f"module name {name!r} is taken by {module.__file__}; rename the file")
                import cases  # pyright: ignore[reportMissingImports]  # tests/mp/cases.py

                cases.EXPECT_IMPL = "cpython"  # pyright: ignore[reportUnknownMemberType]
                self._module = module
            except BaseException as e:  # noqa: BLE001 - re-raised by every item of the module
                self._import_error = e
        if self._import_error is not None:
            raise self._import_error
        return self._module

    # MicroPython half: one run of the whole module, results shared by its items ----------------
    def micropython_results(self) -> tuple[dict[str, str | None], str]:
        if self._mp_result is None and self._mp_error is None:
            why = micropython_unavailable()
            if why is not None:
                pytest.skip(why)
            name = self.path.stem
            driver = (
                "import cases\n"
                f"cases.REPO = {MP_REPO!r}\n"
                "cases.EXPECT_IMPL = 'micropython'\n"
                f"import {name}\n"
                f"cases.run({name})\n"
            )
            libs = [str(MP_DIR / "cases.py"), str(self.path)]
            for rel in self.mp_libs:
                src = REPO / rel
                if not src.exists():
                    raise FileNotFoundError(f"MP_LIBS entry {rel!r} in {self.path.name} does not exist")
                libs.append(str(src))
            try:
                stdout = run_micropython(driver, libs=libs, timeout=300)
                results, summary = parse_case_output(stdout)
                if summary is None:
                    raise CaseFailed(f"the MicroPython run printed no summary line:\n{stdout}")
                self._mp_result = (results, stdout)
            except (MicroPythonError, CaseFailed) as e:
                self._mp_error = e
        if self._mp_error is not None:
            raise CaseFailed(str(self._mp_error))
        assert self._mp_result is not None
        return self._mp_result


class CaseItem(pytest.Item):
    def __init__(self, *, case: str, impl: str, lineno: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.impl = impl
        self.lineno = lineno

    @property
    def case_module(self) -> CaseModule:
        assert isinstance(self.parent, CaseModule)
        return self.parent

    def runtest(self) -> None:
        if self.impl == "cpython":
            getattr(self.case_module.cpython_module(), self.case)()
            return
        results, stdout = self.case_module.micropython_results()
        if self.case not in results:
            raise CaseFailed(f"{self.case} was not reported by the MicroPython run:\n{stdout}")
        failure = results[self.case]
        if failure is not None:
            raise CaseFailed(f"under MicroPython: {failure}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CaseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.lineno - 1, f"{self.case}[{self.impl}]"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "micropython: runs under real MicroPython (WebAssembly, via Node.js)")
    config.addinivalue_line("markers", "cpython: the CPython half of a *_cases.py module")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> CaseModule | None:
    if file_path.name.endswith("_cases.py"):
        return CaseModule.from_parent(parent, path=file_path)
    return None
