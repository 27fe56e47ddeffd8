"""The band's BLE peripheral (hugband.ble) against MicroPython's `bluetooth` API where a link is gone."""

from __future__ import annotations

import errno
import importlib
import sys
from types import ModuleType

import pytest

_IRQ_CENTRAL_CONNECT = 1


def _peripheral_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """hugband.ble imported under CPython, for this test only: MicroPython's `bluetooth` (only
    ``UUID`` is used outside the radio object, which the tests pass in) and `micropython` (``const``)
    are stand-ins, taken out of sys.modules again afterwards."""
    bluetooth = ModuleType("bluetooth")
    bluetooth.UUID = lambda value: value  # type: ignore[attr-defined]
    micropython = ModuleType("micropython")
    micropython.const = lambda value: value  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bluetooth", bluetooth)
    monkeypatch.setitem(sys.modules, "micropython", micropython)
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

    def gatts_notify(self, _conn: int, handle: int, data: bytes | None = None) -> None:
        if not self.connected:
            raise OSError(errno.ENOTCONN)
        self.notified.append(bytes(self.values.get(handle, b"") if data is None else data))

    def gap_disconnect(self, _conn: int) -> bool:
        return self.connected


class Flag:
    def set(self) -> None:
        return None


def test_a_notify_on_a_link_that_just_went_is_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    ble_module = _peripheral_module(monkeypatch)
    radio = LinkGone()
    p = ble_module.Peripheral(radio, "XIAO", "1", Flag())
    assert radio.handler is not None
    radio.handler(_IRQ_CENTRAL_CONNECT, (7, 0, b"\x00" * 6))
    assert p.next_event() == (ble_module.EV_CONNECT, 7, None)
    assert p.notify_event(7, b"press 1") is True
    radio.connected = False  # the central went; its disconnect IRQ has not been drained yet
    assert p.notify_event(7, b"press 2") is False
    assert p.notify_failures == 1
    assert radio.notified == [b"press 1"]


_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3


def test_a_full_event_ring_drops_commands_never_link_events(monkeypatch: pytest.MonkeyPatch) -> None:
    ble_module = _peripheral_module(monkeypatch)
    radio = LinkGone()
    p = ble_module.Peripheral(radio, "XIAO", "1", Flag())
    assert radio.handler is not None
    radio.handler(_IRQ_CENTRAL_CONNECT, (7, 0, b"\x01\x02\x03\x04\x05\x06"))
    for i in range(40):  # a stranger floods the command characteristic while the loop is stalled
        radio.values[p.h_command] = b"\xff" + bytes((i,))  # not a frame: each write is one command
        radio.handler(_IRQ_GATTS_WRITE, (7, p.h_command))
    for conn in (7, 8, 9):  # then links come and go, more than can between two loop steps
        radio.handler(_IRQ_CENTRAL_DISCONNECT, (conn, 0, b"\x00" * 6))
        radio.handler(_IRQ_CENTRAL_CONNECT, (conn + 1, 0, b"\x00" * 6))
    events = []
    event = p.next_event()
    while event is not None:
        events.append(event)
        event = p.next_event()
    assert events[0] == (ble_module.EV_CONNECT, 7, None)
    commands = [e for e in events if e[0] == ble_module.EV_COMMAND]
    assert commands == [(ble_module.EV_COMMAND, 7, b"\xff" + bytes((i,))) for i in range(len(commands))]
    links = [e for e in events[1:] if e[0] != ble_module.EV_COMMAND]
    assert len(links) == 6, "every link event got through"
    assert p.overflows == 40 - len(commands) > 0  # every command that did not get through is counted
    assert p.link_events_lost == 0
    assert p.conn == 10


def test_a_link_whose_disconnect_irq_was_lost_is_found_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    ble_module = _peripheral_module(monkeypatch)
    radio = LinkGone()
    p = ble_module.Peripheral(radio, "XIAO", "1", Flag())
    assert radio.handler is not None
    radio.handler(_IRQ_CENTRAL_CONNECT, (7, 0, b"\x01\x02\x03\x04\x05\x06"))
    assert p.next_event() == (ble_module.EV_CONNECT, 7, None)
    assert bytes(p.addr) == b"\x01\x02\x03\x04\x05\x06"
    assert p.alive(7)
    radio.connected = False  # the stack dropped it; its disconnect IRQ never came
    assert p.next_event() is None
    assert not p.alive(7)
    assert p.next_event() == (ble_module.EV_DISCONNECT, 7, None)
    assert p.conn == -1
    assert p.links_found_gone == 1
    p.disconnect(7)  # asked to drop a link the stack no longer has: reported gone as well
    assert p.next_event() == (ble_module.EV_DISCONNECT, 7, None)
