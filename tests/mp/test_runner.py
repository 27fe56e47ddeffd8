"""Tests of the MicroPython test machinery itself: run.mjs, the `micropython` fixture, cases.py and
the *_cases.py collection plugin (testkit.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cases
import pytest
from testkit import RUNNER, MicroPythonError, parse_case_output, require_tool

MP_DIR = Path(__file__).resolve().parent

DEMO = """
def case_ok():
    assert 1 + 1 == 2

def case_bad():
    assert 1 == 2, "one is not two"

def case_error():
    {}["missing"]

def helper_not_a_case():
    raise RuntimeError("must not run")
"""


def test_fixture_runs_real_micropython(micropython: Callable[..., str]) -> None:
    assert micropython("import sys; print(sys.implementation.name)") == "micropython\n"


def test_exception_is_raised_with_the_micropython_traceback(micropython: Callable[..., str]) -> None:
    with pytest.raises(MicroPythonError) as info:
        micropython("def f():\n    raise ValueError('boom')\n\nf()\n")
    message = str(info.value)
    assert "MicroPython raised ValueError" in message
    assert "ValueError: boom" in message
    assert "line 2, in f" in message


def test_files_and_packages_are_importable(micropython: Callable[..., str], tmp_path: Path) -> None:
    pkg = tmp_path / "demo_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from demo_pkg.inner import X\n")
    (pkg / "inner.py").write_text("X = 41\n")
    out = micropython(
        "import demo_pkg, helper\nprint(demo_pkg.X + helper.ONE, open('/data/t.txt').read())",
        packages=[pkg],
        files={"helper.py": "ONE = 1\n", "/data/t.txt": "hi"},
    )
    assert out == "42 hi\n"


def test_runner_exit_status_and_usage(tmp_path: Path) -> None:
    node = require_tool("node")
    script = tmp_path / "exit3.py"
    script.write_text("import sys\nprint('before')\nsys.exit(3)\n")
    proc = subprocess.run([node, str(RUNNER), str(script)], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout) == (3, "before\n")
    proc = subprocess.run([node, str(RUNNER)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "usage" in proc.stderr


def test_case_runner_reports_pass_and_fail_under_micropython(micropython: Callable[..., str]) -> None:
    out = micropython(
        "import cases, demo_mod\ncases.run(demo_mod)",
        files={"demo_mod.py": DEMO, "cases.py": (MP_DIR / "cases.py").read_text()},
    )
    results, summary = parse_case_output(out)
    assert summary == (1, 2)
    assert results["case_ok"] is None
    assert (results["case_bad"] or "").startswith("AssertionError: one is not two")
    assert "demo_mod.py" in (results["case_bad"] or "")  # traceback lines follow the FAIL line
    assert (results["case_error"] or "").startswith("KeyError")
    assert "helper_not_a_case" not in out


def test_case_runner_main_exits_nonzero_on_failure(micropython: Callable[..., str]) -> None:
    with pytest.raises(MicroPythonError) as info:
        micropython(
            "import cases, demo_mod\ncases.main(demo_mod)",
            files={"demo_mod.py": DEMO, "cases.py": (MP_DIR / "cases.py").read_text()},
        )
    assert info.value.returncode == 1
    assert "1 passed, 2 failed" in info.value.stdout


def test_case_runner_under_cpython(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "demo_cpy_mod.py").write_text(DEMO)
    monkeypatch.syspath_prepend(str(tmp_path))
    import demo_cpy_mod  # pyright: ignore[reportMissingImports]

    lines: list[str] = []
    assert cases.run(demo_cpy_mod, out=lines.append) == (1, 2)
    results, summary = parse_case_output("\n".join(lines))
    assert summary == (1, 2)
    assert results["case_ok"] is None
    assert (results["case_error"] or "").startswith("KeyError")
    sys.modules.pop("demo_cpy_mod", None)


def test_cases_modules_are_collected_for_both_interpreters(pytester: pytest.Pytester) -> None:
    require_tool("node")
    pytester.makepyfile(demo_cases=DEMO)
    quiet = ("-p", "testkit", "-W", "ignore::pytest.PytestAssertRewriteWarning")
    result = pytester.runpytest_inprocess(*quiet, "-v")
    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines(
        [  # in this order
            "*demo_cases.py::case_ok[[]cpython[]] PASSED*",
            "*demo_cases.py::case_bad[[]micropython[]] FAILED*",
            "*demo_cases.py::case_ok[[]micropython[]] PASSED*",
            "*under MicroPython: AssertionError: one is not two*",
        ]
    )
    result = pytester.runpytest_inprocess(*quiet, "-m", "micropython", "-k", "case_ok")
    result.assert_outcomes(passed=1)


STRICT_DEMO = """
import pytest

def test_skipped():
    pytest.skip("no frobnicator here")

@pytest.mark.skipif(True, reason="never on this machine")
def test_skipif():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfail():
    assert False

def test_passes():
    pass
"""


@pytest.mark.parametrize("strict", [False, True])
def test_strict_mode_turns_skips_into_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, strict: bool
) -> None:
    monkeypatch.setenv("HUG_STRICT", "1" if strict else "0")
    pytester.makepyfile(test_demo=STRICT_DEMO)
    result = pytester.runpytest_inprocess("-p", "testkit", "-W", "ignore::pytest.PytestAssertRewriteWarning")
    if strict:
        # A skip during setup (skipif) becomes an error, one in the test body a failure.
        result.assert_outcomes(passed=1, failed=1, errors=1, xfailed=1)
        result.stdout.fnmatch_lines(["*Skip reason: Skipped: no frobnicator here*"])
    else:
        result.assert_outcomes(passed=1, skipped=2, xfailed=1)


def test_strict_mode_fails_a_skipped_module(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUG_STRICT", "1")
    pytester.makepyfile(test_mod="from testkit import require_tool\nrequire_tool('no-such-tool-xyz')\n")
    result = pytester.runpytest_inprocess("-p", "testkit", "-W", "ignore::pytest.PytestAssertRewriteWarning")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*required tool 'no-such-tool-xyz' is not installed*"])
