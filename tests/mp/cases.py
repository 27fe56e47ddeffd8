"""A tiny test-case runner that works the same under CPython and MicroPython.

Write a module named ``tests/<something>_cases.py`` whose top-level functions named ``case_*`` take no
arguments and raise (usually via ``assert``) on failure::

    # tests/frames_cases.py
    from cases import raises, load_json
    from hugproto import frames

    def case_roundtrip():
        assert frames.decode(frames.encode(1, 2)) == (1, 2)

    def case_short_frame_is_incomplete():
        raises(frames.Incomplete, frames.decode, b"\\x01")

    def case_golden_vectors():
        for v in load_json("tests/vectors/frames.json"):
            ...

pytest collects every ``*_cases.py`` under tests/ by itself (see tests/mp/testkit.py): each case
becomes two tests, ``case_x[cpython]`` and ``case_x[micropython]``; the MicroPython half runs the
module once in the real MicroPython (WebAssembly build, via Node) and reports each case from the
``PASS``/``FAIL`` lines this runner prints. Select one half with ``-m micropython`` / ``-m cpython``.

Inside MicroPython: /lib holds hugproto, hugband, this module and the case module; tests/vectors is at
``repo_path("tests/vectors")``. A case module may list more repo-relative files or folders to copy
into /lib with a module-level literal ``MP_LIBS = ["tests/helpers_mp.py"]``. A case module must only
use what MicroPython has (no typing, dataclasses, pathlib, pytest); ``sys.implementation.name`` tells
the interpreters apart if a case really must.

Standalone: ``node tests/mp/run.mjs --lib tests/mp/cases.py --lib tests/x_cases.py
-c "import cases, x_cases; cases.main(x_cases)"`` (exit status 1 when a case failed).
"""

import sys

try:
    import io
except ImportError:  # pragma: no cover - every supported port has io
    io = None

# Root of the repository as seen by the running interpreter; the MicroPython driver sets it to the
# folder where it copied the repo files (tests/vectors). Use repo_path() rather than this directly.
REPO = None
# Which interpreter the driver expects this run to be ("cpython" / "micropython"); None when unknown.
EXPECT_IMPL = None


def repo_path(rel):
    """Absolute path of a repo-relative file (e.g. "tests/vectors/frames.json") in either interpreter."""
    root = REPO
    if root is None:
        here = __file__.replace("\\", "/")
        root = here.rsplit("/", 3)[0] if here.count("/") >= 3 else "."
    return root + "/" + rel


def load_json(rel):
    """Parse a repo-relative JSON file (golden vectors) in either interpreter."""
    import json

    with open(repo_path(rel)) as f:
        return json.load(f)


def raises(exc_type, fn, *args, **kwargs):
    """Call fn(*args, **kwargs) and return the exception it raised; fail unless it is an exc_type."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    name = getattr(exc_type, "__name__", str(exc_type))
    raise AssertionError("expected " + name + " from " + getattr(fn, "__name__", "call"))


def case_names(module):
    """Names of the module's case_* functions, sorted (MicroPython has no definition order)."""
    names = []
    for name in dir(module):
        if name.startswith("case_") and callable(getattr(module, name)):
            names.append(name)
    names.sort()
    return names


def _one_line(text):
    return " ".join(str(text).split())


def _traceback(exc):
    if io is None:
        return ""
    buf = io.StringIO()
    if hasattr(sys, "print_exception"):  # MicroPython
        sys.print_exception(exc, buf)
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=buf)
    return buf.getvalue()


def run(module, only=None, out=print):
    """Run the module's cases, print one PASS/FAIL line each and a summary; return (passed, failed).

    A FAIL line ``FAIL name: ExcType: message`` is followed by the traceback, each line indented by
    four spaces. ``only`` restricts the run to those names.
    """
    passed = failed = 0
    for name in case_names(module):
        if only is not None and name not in only:
            continue
        try:
            getattr(module, name)()
        except Exception as e:  # noqa: BLE001 - a failing case is reported, not raised
            failed += 1
            out("FAIL " + name + ": " + type(e).__name__ + ": " + _one_line(e))
            for line in _traceback(e).rstrip().split("\n"):
                if line:
                    out("    " + line)
        else:
            passed += 1
            out("PASS " + name)
    out(str(passed) + " passed, " + str(failed) + " failed")
    return passed, failed


def main(module):
    """Run all cases and exit with status 1 if any failed (or none were found)."""
    passed, failed = run(module)
    if failed or not passed:
        sys.exit(1)
