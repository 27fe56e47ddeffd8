"""The Android entry point: buildozer runs ``main.py`` at the root of source.dir, which only does

    import sys; sys.path[:0] = ["app", "protocol"]
    from hugapp.ui.android_main import main; main()

One installed app is a family phone or the classroom hub, as chosen on the phone (``phonemode``):

- a family phone (the default): the companion runs in the foreground service (``hugapp.service``),
  its only owner; the window starts it and is its client over the window link (``hugapp.window_link``);
- the class hub: the hub's own screen (``hubscreen``) serves the enrolled bands from the hub's own
  folder while the app is open (no foreground service in hub mode yet); the family's service is
  stopped, and the family's data stays on the phone unused.

The broker comes from ``HUG_BROKER`` in both.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from hugapp import hubcli
from hugapp.core.bandlink import BleConfig
from hugapp.ui import launch, phonemode, platform

log = logging.getLogger("hugapp.ui")


def main() -> int:
    data = phonemode.app_data()
    broker = os.environ.get("HUG_BROKER") or None
    if phonemode.read_mode(data) == phonemode.HUB_MODE:
        return run_hub(data, broker)
    args = argparse.Namespace(
        broker=broker,
        data=str(data),
        airspace=None,
        name="Me",
        sim=False,
        service=True,
    )
    return launch.main(args)


def run_hub(data: Path, broker: str | None) -> int:
    """This phone as the class hub until the app is closed. A hub that cannot start (no broker, or
    one that is not a broker's address) makes the phone a family phone again from its next start: the
    way back lives on the hub's screen, so the app must not stay shut to its family."""
    code = 2
    if not broker:
        print(
            "Hug Button hub: no broker is configured (HUG_BROKER), so there is nothing to relay to",
            file=sys.stderr,
        )
    else:
        service = platform.make_service()
        service.shut_down()  # the family's companion must not serve its bands beside the hub
        if not asyncio.run(service.request_permissions()):
            log.warning("Bluetooth permissions not granted: the hub cannot reach the bands")
        code = hubcli.ui_command(phonemode.hub_folder(data), broker, BleConfig(), app_data=data)
    if code != 0:
        phonemode.set_mode(data, phonemode.FAMILY_MODE)
        print(
            "Hug Button: the hub could not start; a family phone again from the next start", file=sys.stderr
        )
    return code
