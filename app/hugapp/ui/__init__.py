"""The Kivy UI: the companion's screens over a running companion (``controller`` and the per-screen
modules are Kivy-free), and the classroom hub's own screen (``hubscreen`` over ``hubcontrol``).

Kivy reads ``sys.argv`` and takes over logging and ``sys.stderr`` on import unless told not to; the app
has its own command line (``hugbutton app``) and logging, so those are switched off here, before
anything imports Kivy (importing any ``hugapp.ui`` module runs this first).
"""

import os

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
os.environ.setdefault("KIVY_NO_FILELOG", "1")
