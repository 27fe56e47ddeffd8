"""Sim port of MicroPython's ``esp32`` module (the parts a wristband uses).

- ``wake_on_ext0(pin, level)``, ``wake_on_ext1(pins, level)``, ``wake_on_gpio(pins, level)``,
  ``wake_on_touch(wake)``: deep/light-sleep wake sources, kept in ``World.wake`` until the next boot.
- ``NVS(namespace)``: key/value store persisted in ``<state dir>/.hugsim/nvs.json``; ``set_*`` changes
  become durable only on ``commit()`` (as the docs require), reads see uncommitted changes.
- ``raw_temperature()``, ``idf_heap_info()``: plausible constants.
"""

import errno
import json
import os

from hugsim.band import runtime as _rt

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True
HEAP_DATA = 4
HEAP_EXEC = 1


def _pin_id(p) -> int:
    import machine

    return machine.Pin(p)._id if not isinstance(p, machine.Pin) else p._id


def _world():
    import machine

    return machine._world()


def wake_on_ext0(pin, level, /) -> None:
    w = _world()
    if w.board.chip == "esp32c3":
        raise ValueError("no ext0 wake on this chip")  # the C3 build has no wake_on_ext0
    with w._lock:
        if pin is None:
            w.wake.pop("ext0", None)
        else:
            w.wake["ext0"] = (_pin_id(pin), 1 if level else 0)


def wake_on_ext1(pins, level, /) -> None:
    w = _world()
    with w._lock:
        if pins is None:
            w.wake.pop("ext1", None)
        else:
            w.wake["ext1"] = (tuple(_pin_id(p) for p in pins), bool(level))


def wake_on_gpio(pins, level, /) -> None:
    w = _world()
    with w._lock:
        if pins is None:
            w.wake.pop("gpio", None)
        else:
            w.wake["gpio"] = (tuple(_pin_id(p) for p in pins), 1 if level else 0)


def wake_on_touch(wake, /) -> None:
    w = _world()
    with w._lock:
        w.wake["touch"] = bool(wake)


def wake_on_ulp(wake, /) -> None:
    return None


def raw_temperature() -> int:
    return 120  # Fahrenheit-ish raw reading, as the ESP32 reports


def idf_heap_info(capabilities, /) -> list:
    return [(160000, 120000, 110000, 100000)]


def _nvs_path():
    base = (_rt.world.state_dir if _rt.world is not None and _rt.world.state_dir else None) or "."
    return os.path.join(str(base), ".hugsim", "nvs.json")


def _load() -> dict:
    try:
        with open(_nvs_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class NVS:
    def __init__(self, namespace, /) -> None:
        if not namespace or len(namespace) > 15:
            raise ValueError("invalid namespace")
        self._ns = namespace
        self._pending = {}  # key -> ("i32", int) | ("blob", hex) | None (erased)

    def _get(self, key):
        if key in self._pending:
            v = self._pending[key]
        else:
            v = _load().get(self._ns, {}).get(key)
        if v is None:
            raise OSError(errno.ENOENT, "ESP_ERR_NVS_NOT_FOUND")
        return v

    def set_i32(self, key, value, /) -> None:
        self._pending[key] = ["i32", int(value)]

    def get_i32(self, key, /) -> int:
        kind, v = self._get(key)
        if kind != "i32":
            raise OSError(errno.ENOENT, "ESP_ERR_NVS_TYPE_MISMATCH")
        return v

    def set_blob(self, key, value, /) -> None:
        self._pending[key] = ["blob", bytes(value).hex()]

    def get_blob(self, key, buffer, /) -> int:
        kind, v = self._get(key)
        if kind != "blob":
            raise OSError(errno.ENOENT, "ESP_ERR_NVS_TYPE_MISMATCH")
        data = bytes.fromhex(v)
        if len(buffer) < len(data):
            raise OSError(errno.EINVAL, "ESP_ERR_NVS_INVALID_LENGTH")
        buffer[: len(data)] = data
        return len(data)

    def erase_key(self, key, /) -> None:
        self._get(key)  # raises if absent
        self._pending[key] = None

    def commit(self) -> None:
        data = _load()
        ns = data.setdefault(self._ns, {})
        for k, v in self._pending.items():
            if v is None:
                ns.pop(k, None)
            else:
                ns[k] = v
        self._pending.clear()
        path = _nvs_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
