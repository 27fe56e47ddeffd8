"""Relay tests run against both brokers: the embedded one (amqtt, in-process) and a real Mosquitto
started on a free loopback port (skipped if mosquitto is missing; a failure under HUG_STRICT=1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from relaykit import TestBroker, make_broker


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> TestBroker:
    """An unstarted broker; a test starts it inside its own event loop with `async with broker:`."""
    return make_broker(str(request.param), tmp_path)
