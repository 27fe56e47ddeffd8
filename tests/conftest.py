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
* Markers: ``slow``, ``micropython``, ``cpython`` (``-m "not slow"``, ``-m micropython``), ``alone``.
* ``broker`` fixture: an unstarted test broker, once embedded (amqtt) and once a real Mosquitto
  (tests/app/core/relaykit.py); a test starts it in its own event loop with ``async with broker:``.

Layout: the folders mirror the tree (protocol/, firmware/, sim/{band,airspace,phone}/, app/{core,ui}/);
scenarios/ holds the whole-system runs, built on the world kit the demo uses too (hugapp.dev.world).
attacks/, bench/ (not tests), mp/ (MicroPython tooling) and vectors/ stand apart. The helper modules
shared between folders (KITS below) are importable by name from any test.

Parallel runs: `dev.py test` runs the suite on several pytest-xdist workers (``--dist loadgroup``,
scheduled by ``work_unit`` below): the CPU-bound tests (type checks, fuzzing, real MicroPython) run
in turn on one worker, the UI tests on one other, and a test marked ``alone`` (timing figures, like
the fault injection's p99) runs with no other test beside it.

Strict mode (HUG_STRICT=1, set by `dev.py test --strict` and by CI): every skipped test, and every
skipped module, is reported as a failure with the skip reason, so a missing tool cannot hide tests.
xfail stays xfail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

TESTS = Path(__file__).resolve().parent
# testkit (mp/), relaykit (app/core/), test_airspace_support (sim/airspace/), bluez_support (sim/phone/),
# the minimal phone and the virtual band world (firmware/).
KITS = ("mp", "app/core", "sim/airspace", "sim/phone", "firmware", "scenarios")
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

from hugapp.dev.cluster import NatsCluster  # noqa: E402

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


BROKER_KINDS = ("embedded", "mosquitto")  # a module lists ("embedded", "mosquitto", "cluster") to add NATS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that take `broker` run once per kind in their module's BROKER_KINDS (default: above)."""
    if "broker" in metafunc.fixturenames:
        kinds = getattr(metafunc.module, "BROKER_KINDS", BROKER_KINDS)
        metafunc.parametrize("broker", kinds, indirect=True)


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A three-node NATS cluster (JetStream R3, MQTT on each node) for this test process, shared: a
    test that kills a node leaves `ClusterTestBroker.start()` to bring it back."""
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"), 3, exe=require_tool("nats-server"))
    asyncio.run(cluster.start())
    try:
        yield cluster
    finally:
        asyncio.run(cluster.stop())


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> TestBroker:
    """An unstarted broker; a test starts it inside its own event loop with `async with broker:`.
    Mosquitto and nats-server are skipped when missing (a failure under HUG_STRICT=1)."""
    kind = str(request.param)
    cluster = request.getfixturevalue("nats_cluster") if kind == "cluster" else None
    return make_broker(kind, tmp_path, cluster)


# ----------------------------------------------------------------------------------- parallel runs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The longest first, so that no worker is left with one at the end: alone, then the scenarios.
    items.sort(key=lambda i: (not i.get_closest_marker("alone"), TESTS / "scenarios" not in i.path.parents))


# Tests that keep a core busy (type checks, fuzzing, real MicroPython), run one after another on one
# worker: beside each other they would starve the virtual bands of the tests that wait on them.
CPU_BOUND = (
    "tests/test_static.py",
    "tests/attacks/test_attack_fuzz",
    "tests/attacks/test_attack_broker_flood.py",
    "tests/attacks/test_attack_circle_member.py",
    "tests/firmware/test_day_heap.py",
)


# Modules whose tests all read one recording made by a module-scoped fixture (a minute of a world):
# on one worker it is made once, not once per worker.
ONE_RECORDING = ("tests/attacks/test_attack_ble_tracking.py",)
# A class of twenty bands at a time (the hub's class test, the demo's class): never two classes at once.
CLASSROOM = ("tests/scenarios/test_hub_class.py", "tests/scenarios/test_demo_hugs.py")


def work_unit(nodeid: str) -> str:
    """The tests one worker runs together, in turn: the CPU-bound ones (a ``*_cases.py`` module's
    MicroPython half is also one MicroPython run for all its cases), a module of ONE_RECORDING, the
    CLASSROOM, the NATS cluster's (three
    nats-server nodes per worker would starve each other's JetStream elections on two cores), the UI
    tests (one window at a time); any other test on its own."""
    path, _, name = nodeid.partition("::")
    if path.endswith("_cases.py") or path.startswith(CPU_BOUND) or path == "tests/mp/test_runner.py":
        return "cpu"
    if path in ONE_RECORDING:
        return path
    if path in CLASSROOM:
        return "classroom"
    if "cluster" in path or "cluster" in name:  # one NATS cluster per run, not one per worker
        return "cluster"
    if path.startswith("tests/app/ui/"):
        return "ui"
    return nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """`--dist loadgroup` (as `dev.py test` runs) schedules by :func:`work_unit`. (xdist's own
    loadgroup reads xdist_group marks through a node id attribute that pytest 9 no longer has.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)  # pyright: ignore[reportArgumentType]


@contextlib.contextmanager
def _turn(run_id: str, alone: bool) -> Iterator[None]:
    """A test's turn among the workers of one run: shared, or the whole machine for an `alone` test.
    The gate keeps new tests from starting while an `alone` test waits for the running ones to end."""
    import fcntl  # POSIX; xdist runs elsewhere simply share the machine

    base = Path(tempfile.gettempdir()) / f"hug-tests-{run_id}"
    with open(f"{base}.gate", "ab") as gate, open(f"{base}.lock", "ab") as lock:
        if alone:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX)
        else:
            fcntl.flock(gate, fcntl.LOCK_SH)
            fcntl.flock(lock, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # set in xdist workers only
    if run_id is None or os.name != "posix":
        return (yield)
    with _turn(run_id, item.get_closest_marker("alone") is not None):
        return (yield)
