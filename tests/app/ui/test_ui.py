"""The app's real widgets under a virtual X server, on the simulated world (see driver.py).

Each screen is saved as a PNG; with HUG_SCREENSHOTS=DIR they go to DIR (the README's pictures are
made with HUG_SCREENSHOTS=docs/screenshots), otherwise to the test's temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from uikit import check_png, run_scenario, shots_dir

SHOTS = {
    "pair_and_hug": ["bands-pairing", "bands", "home", "history", "settings", "child"],
    "two_phones": ["link-code", "link", "home-circle", "history-circle"],
    "sim_band_window": ["simband"],
    "phoneless_child": ["bands-wearers", "home-wearers", "history-wearer", "settings-wearer"],
    "service_client": [],
    "at_school": ["bands-at-school"],
}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(SHOTS))
def test_scenario(scenario: str, xdisplay: str, tmp_path: Path) -> None:
    """pair_and_hug: scan, the 5-second countdown, pair; the phone's heart makes the band buzz; test
    buzz; history with felt; quiet hours (a wrong one refused in words); child's mode behind a PIN.
    two_phones: a wrong code refused in words; the code and QR shown; the other phone joins; hugs
    both ways, felt; hug back. sim_band_window: the space bar holds the band's heart (pairing), a
    buzz shows in the window, a mouse tap reaches the phone. phoneless_child: pairing asks whose band
    it is (a new person without a phone), the home gateway co-owns it (Share), Home shows Mia with her
    band's state, History names her, Settings sets her quiet hours (chosen by name), the gateway gets
    them. at_school: Bands → School takes the class hub's code, the row says the band is at school
    via the hub, a press arrives through it, and the hub stops serving it. service_client: the window
    as a client of the hug service process (Android's layout): pair, the heart buzzes the band, one
    BLE link."""
    shots = shots_dir(tmp_path)
    run_scenario(scenario, xdisplay, tmp_path / "world", shots)
    for name in SHOTS[scenario]:
        check_png(shots / f"{name}.png")
