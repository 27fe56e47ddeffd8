"""The Android entry point (hugapp.ui.android_main): the family app or the class hub, as the phone
chose (hugapp.ui.phonemode), on the app's own data folder and HUG_BROKER."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from hugapp import hubcli
from hugapp.core.bandlink import BleConfig
from hugapp.core.store import APP_NAME
from hugapp.ui import android_main, launch, platform
from hugapp.ui.phonemode import FAMILY_MODE, HUB_MODE, hub_folder, read_mode, set_mode

BROKER = "mqtts://hug:secret@broker.example:8883"


@pytest.fixture
def phone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The app's data folder under a fresh XDG_DATA_HOME; the two apps it may start, recorded."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("HUG_BROKER", BROKER)
    ran: dict[str, Any] = {"data": tmp_path / APP_NAME, "service": platform.BackgroundService()}
    ran["service"].started = True  # the family's service, left running by the family app

    def family(args: argparse.Namespace) -> int:
        ran["family"] = args
        return 0

    def hub(folder: Path, broker_url: str, config: BleConfig, app_data: Path | None = None) -> int:
        ran["hub"] = (folder, broker_url, config, app_data)
        return 0

    monkeypatch.setattr(launch, "main", family)
    monkeypatch.setattr(hubcli, "ui_command", hub)
    monkeypatch.setattr(platform, "make_service", lambda: ran["service"])
    return ran


def test_a_family_phone_opens_the_family_app(phone: dict[str, Any]) -> None:
    assert android_main.main() == 0
    assert "hub" not in phone
    args = phone["family"]
    assert (args.broker, args.data, args.service) == (BROKER, str(phone["data"]), True)


def test_a_phone_in_hub_mode_opens_the_hub_screen_on_the_hubs_own_folder(phone: dict[str, Any]) -> None:
    data = phone["data"]
    set_mode(data, HUB_MODE)
    assert android_main.main() == 0
    assert "family" not in phone
    folder, broker, config, app_data = phone["hub"]
    assert (folder, broker, app_data) == (hub_folder(data), BROKER, data)
    assert isinstance(config, BleConfig)
    assert not phone["service"].started  # the family's companion does not serve beside the hub
    assert read_mode(data) == HUB_MODE


def test_hub_mode_without_a_broker_says_so_and_is_a_family_phone_next_time(
    phone: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HUG_BROKER")
    data = phone["data"]
    set_mode(data, HUB_MODE)
    assert android_main.main() == 2
    assert "family" not in phone
    assert "hub" not in phone
    err = capsys.readouterr().err
    assert "no broker is configured (HUG_BROKER)" in err, err
    assert "a family phone again from the next start" in err, err
    assert read_mode(data) == FAMILY_MODE  # the way back is on the hub's screen: never locked out
    assert not hub_folder(data).exists()


def test_a_hub_that_cannot_start_leaves_a_family_phone_next_time(
    phone: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*_args: Any, **_kwargs: Any) -> int:
        return 2  # as when HUG_BROKER is not a broker's URL

    monkeypatch.setattr(hubcli, "ui_command", refused)
    set_mode(phone["data"], HUB_MODE)
    assert android_main.main() == 2
    assert read_mode(phone["data"]) == FAMILY_MODE
