"""Attack tests: fuzzed decoders (CPython and real MicroPython), replayed BLE frames against the
real firmware, strangers on the broker, rogue members, a hostile local process. tests/attacks goes on
sys.path (fuzzcore); relaykit and the firmware tests' virtual band come from the shared kits
(tests/conftest.py). Here `broker`'s Mosquitto runs with deploy/mosquitto.conf's limits (the tests
that need deploy's ACL and accounts start their own)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from relaykit import MosquittoTestBroker, TestBroker, make_broker
from testkit import require_tool

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
DEPLOY = HERE.parents[1] / "deploy"


def deploy_limits() -> str:
    """deploy/mosquitto.conf's size and queue limits (the test listener replaces its TLS listeners)."""
    keep = ("message_size_limit", "max_queued_messages", "max_inflight_messages", "max_queued_bytes")
    lines = (DEPLOY / "mosquitto.conf").read_text().splitlines()
    conf = "".join(line + "\n" for line in lines if line.split(" ", 1)[0] in keep)
    assert "message_size_limit" in conf
    return conf


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> TestBroker:
    """As tests/conftest.py's, with deploy's limits on Mosquitto."""
    if request.param == "mosquitto":
        return MosquittoTestBroker(require_tool("mosquitto"), tmp_path, deploy_limits())
    return make_broker(str(request.param), tmp_path)
