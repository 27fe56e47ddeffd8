"""Run a `hugbutton` command on a phone whose wall clock is wrong.

    python skewed_phone.py SKEW_FILE gateway --data ... run

``time.time()``, and so everything the app builds on it, returns real time plus the number of
seconds written in SKEW_FILE, re-read whenever the file changes: the test moves the clock while the
phone runs. Monotonic time is untouched, as on a phone whose wall clock is set or corrected.
"""

from __future__ import annotations

import os
import sys
import time

_real_time = time.time
_skew_file = sys.argv[1]
_seen: list[float] = [0.0, -1.0, 0.0]  # last check (monotonic), file mtime, skew in seconds


def _skewed_time() -> float:
    now = time.monotonic()
    if now - _seen[0] > 0.05:
        _seen[0] = now
        try:
            mtime = os.stat(_skew_file).st_mtime_ns
            if mtime != _seen[1]:
                with open(_skew_file) as f:
                    _seen[2] = float(f.read().strip() or 0)
                _seen[1] = mtime
        except (OSError, ValueError):
            pass  # half-written or missing: keep the last skew
    return _real_time() + _seen[2]


time.time = _skewed_time  # before the app is imported, so its defaults bind this clock

from hugapp.cli import main  # noqa: E402

sys.exit(main(sys.argv[2:]))
