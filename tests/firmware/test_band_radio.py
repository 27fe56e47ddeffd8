"""The band's BLE peripheral (hugband.ble) against MicroPython's `bluetooth` API where a link is gone."""

from __future__ import annotations

import errno
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
_IRQ_CENTRAL_CONNECT = 1


def _peripheral_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """hugband.ble imported with the sim port's `bluetooth` (UUID) and `micropython` (const), for
    this test only: the modules are taken out of sys.modules again afterwards."""
    for name in ("bluetooth", "micropython"):
        spec = importlib.util.spec_from_file_location(
            name, ROOT / "sim" / "hugsim" / "band" / "port" / f"{name}.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "hugband.ble", raising=False)
    module = importlib.import_module("hugband.ble")
    monkeypatch.delitem(sys.modules, "hugband.ble")
    return module


class LinkGone:
    """MicroPython's bluetooth.BLE at the moment the central has just gone: the disconnect IRQ is
    queued, and gatts_notify raises OSError(ENOTCONN) as the real one does."""

    def __init__(self) -> None:
        self.handler = None
        self.values: dict[int, bytes] = {}
        self.notified: list[bytes] = []
        self.connected = True

    def active(self, *_args: object) -> bool:
        return True

    def config(self, **_kw: object) -> None:
        return None

    def irq(self, handler) -> None:
        self.handler = handler

    def gatts_register_services(self, _services: object) -> tuple[tuple[int, ...], ...]:
        return ((10, 11, 12), (20,), (30, 31, 32))

    def gatts_set_buffer(self, *_args: object) -> None:
        return None

    def gatts_write(self, handle: int, value: bytes, _notify: bool = False) -> None:
        self.values[handle] = bytes(value)

    def gatts_read(self, handle: int) -> bytes:
        return self.values.get(handle, b"")

    def gatts_notify(self, _conn: int, _handle: int, data: bytes) -> None:
        if not self.connected:
            raise OSError(errno.ENOTCONN)
        self.notified.append(bytes(data))


class Flag:
    def set(self) -> None:
        return None


def test_a_notify_on_a_link_that_just_went_is_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    ble_module = _peripheral_module(monkeypatch)
    radio = LinkGone()
    p = ble_module.Peripheral(radio, "Hug-0001", "XIAO", "1", Flag())
    assert radio.handler is not None
    radio.handler(_IRQ_CENTRAL_CONNECT, (7, 0, b"\x00" * 6))
    assert p.next_event() == (ble_module.EV_CONNECT, 7, None)
    assert p.notify_event(b"press 1") is True
    radio.connected = False  # the central went; its disconnect IRQ has not been drained yet
    assert p.notify_event(b"press 2") is False
    assert p.notify_failures == 1
    assert radio.notified == [b"press 1"]
