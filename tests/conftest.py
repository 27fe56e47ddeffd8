"""Shared pytest setup for Hug Button. Run everything with `python3 dev.py test [--strict] [ARGS]`.

Fixtures and helpers (helpers live in tests/mp/testkit.py; import them with `from testkit import ...`):

* ``micropython`` fixture: ``micropython(code, packages=MP_PACKAGES, files=None, libs=(), timeout=120)
  -> str`` runs code in the real MicroPython (official WebAssembly build, through Node) with
  protocol/hugproto and firmware/hugband copied to /lib, and returns its stdout. If the code raises,
  it raises ``MicroPythonError`` (an AssertionError) whose message is MicroPython's traceback.
  ``files={"x.py": "...", "/data/v.bin": "..."}`` adds files (relative paths go under /lib).
* ``require_tool(name) -> path``: skip when an external program (node, mosquitto, Xvfb, dbus-daemon)
  is missing (``from testkit import require_tool``; usable in tests, fixtures or at module level).
* ``*_cases.py`` modules: write ``case_*`` functions once and they run under CPython *and* real
  MicroPython, one pytest test per case and interpreter (details in tests/mp/cases.py).
* Markers: ``slow``, ``micropython``, ``cpython`` (``-m "not slow"``, ``-m micropython``).
* ``broker`` fixture: an unstarted test broker, once embedded (amqtt) and once a real Mosquitto
  (tests/app/core/relaykit.py); a test starts it in its own event loop with ``async with broker:``.

Layout: the folders mirror the tree (protocol/, firmware/, sim/{band,airspace,phone}/, app/{core,ui}/);
scenarios/ holds the whole-system runs, built on the world kit the demo uses too (hugapp.dev.world).
attacks/, bench/ (not tests), mp/ (MicroPython tooling) and vectors/ stand apart. The helper modules
shared between folders (KITS below) are importable by name from any test.

Strict mode (HUG_STRICT=1, set by `dev.py test --strict` and by CI): every skipped test, and every
skipped module, is reported as a failure with the skip reason, so a missing tool cannot hide tests.
xfail stays xfail.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

TESTS = Path(__file__).resolve().parent
# testkit (mp/), relaykit (app/core/), test_airspace_support (sim/airspace/), bluez_support (sim/phone/),
# the minimal phone and the virtual band world (firmware/).
KITS = ("mp", "app/core", "sim/airspace", "sim/phone", "firmware")
for _kit in reversed(KITS):
    if str(TESTS / _kit) not in sys.path:
        sys.path.insert(0, str(TESTS / _kit))

from relaykit import TestBroker, make_broker  # noqa: E402 - the KITS are on sys.path now
from testkit import (  # noqa: E402
    MP_PACKAGES,
    MicroPythonError,
    pytest_collect_file,
    pytest_configure,
    pytest_make_collect_report,
    pytest_report_header,
    pytest_runtest_makereport,
    require_tool,
    run_micropython,
)

__all__ = [
    "MP_PACKAGES",
    "MicroPythonError",
    "pytest_collect_file",
    "pytest_configure",
    "pytest_make_collect_report",
    "pytest_report_header",
    "pytest_runtest_makereport",
    "require_tool",
    "run_micropython",
]

# CI machines have 2 cores and run servers beside the tests: no per-example deadline.
settings.register_profile("hug", deadline=None, print_blob=True)
settings.load_profile("hug")


@pytest.fixture
def micropython() -> Callable[..., str]:
    """Run code under real MicroPython; see run_micropython in tests/mp/testkit.py."""
    return run_micropython


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> TestBroker:
    """An unstarted broker; a test starts it inside its own event loop with `async with broker:`.
    Mosquitto is skipped when missing (a failure under HUG_STRICT=1)."""
    return make_broker(str(request.param), tmp_path)
