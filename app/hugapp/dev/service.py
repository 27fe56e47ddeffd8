"""``python -m hugapp.dev.service``: the hug service (``hugapp.service``) on the simulated radio named
by ``HUG_AIRSPACE`` (HOST:PORT); otherwise the same settings (``HUG_BROKER``, ``HUG_DATA``)."""

from __future__ import annotations

import os

from hugapp import service
from hugapp.dev.radio import ble_config

if __name__ == "__main__":
    service.main(ble_config(os.environ.get("HUG_AIRSPACE")))
