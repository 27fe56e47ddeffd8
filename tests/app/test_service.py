"""The hug service (hugapp.service) on a phone that is the class hub: it does not start."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hugapp.service import serve
from hugapp.ui.phonemode import HUB_MODE, set_mode


def test_the_service_runs_no_family_companion_on_a_hub(tmp_path: Path) -> None:
    """Android restarts a sticky service on its own: on a phone in hub mode it ends at once, opening
    neither the family's store nor the window link."""
    set_mode(tmp_path, HUB_MODE)
    asyncio.run(asyncio.wait_for(serve(None, tmp_path), 10))
    assert [p.name for p in tmp_path.iterdir()] == ["mode"]
