"""Board files: which pin is the heart, the motor, the LED and the battery sense on a given band.

The one reader of board files, on the band and on the PC (``hugbutton band build``, the simulator).
``load(name)`` reads ``boards/<name>.json`` (next to this module, or ``boards_dir``) and returns a plain
dict with every key present (defaults filled in) after validation; any problem raises ``BoardError``
with a message naming the board and the key. ``check(dict)`` validates a dict built elsewhere.
``flashed()`` is the board on a band: ``board.json`` at the root of its flash, as ``hugbutton band
build`` lays it out next to ``main.py`` (the band's working directory), else the default board.

Keys: name, title, mcu ("esp32c3"/"esp32s3"), march ("rv32imc"/"xtensawin"), button_pin, button_active_low,
touch_pin, touch_threshold, motor_pin, motor_driver ("erm_pwm"/"drv2605l"), pwm_freq, i2c
({"id", "sda", "scl"} or null), led_pin, led_kind ("pin"/"neopixel"/null), led_active_low,
battery_adc_pin, battery_divider, cpu_mhz, heap_kb (the GC heap the firmware may use, in KiB: the
budget virtual bands run capped at; README "Memory"), address_rotate_s (how often the band takes a new
private address, 900 like BLE controllers' RPA timeout; tests shorten it), wiring (list of str), bom
(list of str).
The heart is ``button_pin`` or ``touch_pin`` (exactly one). ``touch_rises`` is derived: True on the
S2/S3 (a touch raises ``TouchPad.read()``), False on the original ESP32.
"""

import json

DEFAULT = "xiao_esp32c3"
FLASHED = "board.json"

REQUIRED = ("name", "title", "mcu", "march", "motor_driver")

DEFAULTS = {
    "button_pin": None,
    "button_active_low": True,
    "touch_pin": None,
    "touch_threshold": 0.1,
    "motor_pin": None,
    "pwm_freq": 20000,
    "i2c": None,
    "led_pin": None,
    "led_kind": None,
    "led_active_low": False,
    "battery_adc_pin": None,
    "battery_divider": 2.0,
    "cpu_mhz": 80,
    "heap_kb": 160,
    "address_rotate_s": 900,
    "wiring": [],
    "bom": [],
}

MCUS = {"esp32c3": "rv32imc", "esp32s3": "xtensawin", "esp32": "xtensawin"}
MOTOR_DRIVERS = ("erm_pwm", "drv2605l")
LED_KINDS = (None, "pin", "neopixel")
CPU_MHZ = (80, 160, 240)


class BoardError(ValueError):
    """A board file is missing, unreadable or inconsistent."""


def _here() -> str:
    f = globals().get("__file__", "")
    i = f.rfind("/")
    return f[:i] if i >= 0 else "."


def _pin(board: dict, key: str, required: bool = False) -> None:
    v = board[key]
    if v is None:
        if required:
            raise BoardError("board %s: %s must be a GPIO number" % (board["name"], key))
        return
    if type(v) is not int or not 0 <= v <= 48:
        raise BoardError("board %s: %s must be a GPIO number 0..48 or null, got %r" % (board["name"], key, v))


def check(board: dict) -> dict:
    """Validate ``board`` in place after filling in defaults; return it."""
    for key in REQUIRED:
        if key not in board:
            raise BoardError("board %s: missing key %r" % (board.get("name", "?"), key))
    for key in DEFAULTS:
        if key not in board:
            v = DEFAULTS[key]
            board[key] = list(v) if type(v) is list else v
    name = board["name"]
    mcu = board["mcu"]
    if mcu not in MCUS:
        raise BoardError("board %s: unknown mcu %r (known: %s)" % (name, mcu, ", ".join(sorted(MCUS))))
    if board["march"] != MCUS[mcu]:
        raise BoardError("board %s: march for %s is %r, not %r" % (name, mcu, MCUS[mcu], board["march"]))
    for key in ("button_pin", "touch_pin", "motor_pin", "led_pin", "battery_adc_pin"):
        _pin(board, key)
    if (board["button_pin"] is None) == (board["touch_pin"] is None):
        raise BoardError("board %s: set exactly one of button_pin and touch_pin" % name)
    t = board["touch_threshold"]
    if not (type(t) in (int, float) and 0 < t < 1):
        raise BoardError("board %s: touch_threshold must be a fraction between 0 and 1, got %r" % (name, t))
    driver = board["motor_driver"]
    if driver not in MOTOR_DRIVERS:
        known = ", ".join(MOTOR_DRIVERS)
        raise BoardError("board %s: unknown motor_driver %r (known: %s)" % (name, driver, known))
    if driver == "erm_pwm":
        _pin(board, "motor_pin", True)
    else:
        i2c = board["i2c"]
        if type(i2c) is not dict or "sda" not in i2c or "scl" not in i2c:
            raise BoardError('board %s: drv2605l needs i2c {"id", "sda", "scl"}' % name)
        if "id" not in i2c:
            i2c["id"] = 0
    if board["led_kind"] not in LED_KINDS:
        raise BoardError("board %s: unknown led_kind %r" % (name, board["led_kind"]))
    if board["led_kind"] is not None:
        _pin(board, "led_pin", True)
    if board["cpu_mhz"] not in CPU_MHZ:
        raise BoardError("board %s: cpu_mhz must be one of 80, 160, 240" % name)
    if not (type(board["pwm_freq"]) is int and 100 <= board["pwm_freq"] <= 40000):
        raise BoardError("board %s: pwm_freq must be 100..40000 Hz" % name)
    if not (type(board["heap_kb"]) is int and 32 <= board["heap_kb"] <= 512):
        raise BoardError("board %s: heap_kb must be 32..512 (KiB)" % name)
    if not (type(board["address_rotate_s"]) is int and 1 <= board["address_rotate_s"] <= 3600):
        raise BoardError("board %s: address_rotate_s must be 1..3600 (seconds)" % name)
    d = board["battery_divider"]
    if not (type(d) in (int, float) and d >= 1):
        raise BoardError("board %s: battery_divider must be >= 1" % name)
    board["touch_rises"] = mcu != "esp32"
    return board


def read(path: str, name: str) -> dict:
    """The JSON object in ``path`` for board ``name``, not yet checked; OSError if there is no file."""
    with open(path) as f:
        try:
            board = json.load(f)
        except ValueError as e:
            raise BoardError("board %r: %s is not valid JSON (%s)" % (name, path, e))
    if type(board) is not dict:
        raise BoardError("board %r: %s must hold a JSON object" % (name, path))
    return board


def load(name: str = DEFAULT, boards_dir: str = "") -> dict:
    """Load and validate ``boards/<name>.json``."""
    if not name or "/" in name or "." in name:
        raise BoardError("bad board name %r" % name)
    path = "%s/%s.json" % (boards_dir or _here() + "/boards", name)
    try:
        board = read(path, name)
    except OSError:
        raise BoardError("unknown board %r (no %s)" % (name, path))
    if board.get("name") != name:
        raise BoardError("board %r: file says its name is %r" % (name, board.get("name")))
    return check(board)


def flashed() -> dict:
    """The board file at the flash root (``FLASHED``), else the default board."""
    try:
        board = read(FLASHED, FLASHED)
    except OSError:
        return load()
    return check(board)
