"""The classroom hub's own screen (`hugbutton hub --data DIR --broker URL ui`): the real Kivy screen
under a virtual X server, its hub serving on the simulated radio and a real broker (hubdriver.py).
Screenshots go to the test's temporary folder, or to HUG_SCREENSHOTS=DIR."""

from __future__ import annotations

from pathlib import Path

import pytest
from uikit import check_png, run_scenario, shots_dir

from hugapp import cli


@pytest.mark.slow
def test_the_hub_screen_names_the_hub_enrols_a_band_and_removes_it(xdisplay: str, tmp_path: Path) -> None:
    """A name that is not one (41 characters, control characters) is refused in words and the store
    keeps none; "Class 2" is saved and heads the screen. A code nobody types expires and says so; a
    cancelled code reaches nothing. The code read off the screen (its QR reads the hub's code), typed by
    a parent's app, enrols the band: "Band enrolled", the list shows its enrolment id and nothing of the
    family, the status counts 1 enrolled, the parent learns the name. Remove asks first; Keep it keeps
    the band, Remove takes it out of the store and the status."""
    shots = shots_dir(tmp_path)
    run_scenario("hub_screen", xdisplay, tmp_path / "world", shots, timeout=90, driver="hubdriver.py")
    for name in ("hub-enrol", "hub"):
        check_png(shots / f"{name}.png")


@pytest.mark.slow
def test_the_hub_screen_says_when_no_broker_answers(xdisplay: str, tmp_path: Path) -> None:
    """The status says the broker is not reachable; Enrol a band says it can't reach it (host and
    port, never the URL's password) and shows no code."""
    shots = shots_dir(tmp_path)
    run_scenario("hub_offline", xdisplay, tmp_path / "world", shots, driver="hubdriver.py")
    check_png(shots / "hub-offline.png")


def test_hub_ui_without_a_display_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    args = ["hub", "--data", str(tmp_path / "hub"), "--broker", "mqtt://127.0.0.1:1", "ui"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "no display" in err, err
    assert "hugbutton hub run" in err, err
    assert not (tmp_path / "hub").exists()  # nothing was started
