"""Android entry point for buildozer (the app's sources live under app/ and protocol/)."""

import sys

sys.path[:0] = ["app", "protocol"]

from hugapp.ui.android_main import main  # noqa: E402

main()
