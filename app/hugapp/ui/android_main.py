"""The Android entry point: buildozer runs ``main.py`` at the root of source.dir, which only does

    import sys; sys.path[:0] = ["app", "protocol"]
    from hugapp.ui.android_main import main; main()

The companion runs in the foreground service (``hugapp.service``), its only owner; the window starts
it and is its client over the window link (``hugapp.window_link``).
"""

from __future__ import annotations

import argparse
import os

from hugapp.ui import launch


def main() -> int:
    args = argparse.Namespace(
        broker=os.environ.get("HUG_BROKER") or None,
        data=None,
        airspace=None,
        name="Me",
        sim=False,
        service=True,
    )
    return launch.main(args)
