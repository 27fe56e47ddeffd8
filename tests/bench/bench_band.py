"""Band benchmark: heap high-water under real MicroPython, .mpy size per board, and a power model.

Power model: the scripted day (bandday) runs under CPython; every BandLogic's EnergyMeter (one per
boot) reports the time spent in each radio/CPU state. Those shares are multiplied by per-chip average
currents built from datasheet figures below, giving the average current and hours on a 200 mAh cell,
for stock MicroPython (no light sleep with BLE on: micropython issue 6396) and for an ESP-IDF build
with automatic light sleep (DESIGN.md: ~0.14-0.23 mA in light sleep with BLE).

Datasheet figures (approximate, typical, 3.3 V, 25 C; check against the current revisions):
* ESP32-C3 Series Datasheet (Espressif, v1.x), section "Current Consumption": modem-sleep with the CPU
  at 80 MHz idle ~12 mA (160 MHz running ~20-23 mA); BLE/RF TX at 0 dBm ~100-130 mA and RX ~80 mA
  during radio events; deep sleep ~5 uA; light sleep ~130 uA.
* ESP32-S3 Series Datasheet (Espressif, v1.x), same section: modem-sleep at 80 MHz idle ~20 mA (one core
  active ~27 mA at 80 MHz); RF TX ~ 100-130 mA, RX ~ 80-95 mA; deep sleep ~8 uA; light sleep ~240 uA.
* Radio duty: an advertising event on 3 channels ~1.5 ms of radio; a connection event ~0.5 ms. The day's
  advertising back-off is 100 -> 500 -> 1285 ms (hugband.power); 500 ms is used as the mean interval,
  a 50 ms connection interval is assumed (the phone chooses it).
* Light-sleep build: the DESIGN.md figures (0.14 mA C3, 0.23 mA S3 average with BLE advertising or
  connected at long intervals), plus the same motor/LED charge.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import REPO, md_table, save, table

sys.path.insert(0, str(REPO / "tests" / "firmware"))  # bandday, the scripted day

RADIO_MA = {"esp32c3": 110.0, "esp32s3": 115.0}  # mean of TX/RX during a radio event
CPU_IDLE_MA = {"esp32c3": 12.0, "esp32s3": 20.0}  # modem sleep, 80 MHz, no light sleep
DEEP_SLEEP_MA = {"esp32c3": 0.005, "esp32s3": 0.008}
LIGHT_SLEEP_BLE_MA = {"esp32c3": 0.14, "esp32s3": 0.23}
ADV_DUTY = 1.5 / 500.0
CONN_DUTY = 0.5 / 50.0
MOTOR_MA, LED_MA = 60.0, 2.0
CELL_MAH = 200.0
BOARDS = {"xiao_esp32c3": "esp32c3", "xiao_esp32s3": "esp32s3", "xiao_esp32s3_erm": "esp32s3"}
_LINE = re.compile(r"heap_high_water=(\d+) bytes \((\d+) above the (\d+) bytes after imports\)")


def heap(board: str) -> dict[str, int]:
    proc = subprocess.run(
        ["node", str(REPO / "tests" / "firmware" / "day_mp.mjs"), board],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=True,
    )
    m = _LINE.search(proc.stdout)
    assert m is not None, proc.stdout + proc.stderr
    high, above, base = (int(g) for g in m.groups())
    return {"high_water": high, "above_imports": above, "after_imports": base}


def mpy_size(board: str) -> dict[str, int]:
    from hugapp import bandtools

    with tempfile.TemporaryDirectory() as tmp:
        built = bandtools.build(board, Path(tmp) / board, progress=False)
        return {"files": len(built), "bytes": sum(b.size for b in built)}


def day_times() -> dict[str, float]:
    import bandday as day

    from hugband import power

    d = day.Day("xiao_esp32c3")
    meters: dict[int, Any] = {}
    for i in range(len(d)):
        d.step(i)
        if d.h is not None:
            meters[id(d.h.core)] = d.h.core.meter
    totals = dict.fromkeys(power.STATE_NAMES, 0.0)
    motor = led = 0.0
    for meter in meters.values():
        for s, name in enumerate(power.STATE_NAMES):
            totals[name] += meter.state_ms[s]
        motor += meter.motor_ms
        led += meter.led_ms
    return {**{k + "_ms": v for k, v in totals.items()}, "motor_ms": motor, "led_ms": led}


def power_model(t: dict[str, float], chip: str, span_ms: float | None = None) -> dict[str, float]:
    total = sum(t[n + "_ms"] for n in ("radio_off", "advertising", "connected", "deep_sleep"))
    share = {n: t[n + "_ms"] / total for n in ("radio_off", "advertising", "connected", "deep_sleep")}
    extra = (MOTOR_MA * t["motor_ms"] + LED_MA * t["led_ms"]) / (span_ms or total)
    awake = share["radio_off"] + share["advertising"] + share["connected"]
    stock = (
        CPU_IDLE_MA[chip] * awake
        + RADIO_MA[chip] * (ADV_DUTY * share["advertising"] + CONN_DUTY * share["connected"])
        + DEEP_SLEEP_MA[chip] * share["deep_sleep"]
        + extra
    )
    light = LIGHT_SLEEP_BLE_MA[chip] * awake + DEEP_SLEEP_MA[chip] * share["deep_sleep"] + extra
    return {
        "stock_avg_ma": stock,
        "stock_hours": CELL_MAH / stock,
        "light_sleep_avg_ma": light,
        "light_sleep_hours": CELL_MAH / light,
        "motor_led_ma": extra,
    }


def main() -> dict[str, Any]:
    print("band: heap high-water under real MicroPython (tests/firmware/day_mp.mjs), .mpy size, power model")
    rows, md_rows, boards = [], [], {}
    for board, chip in BOARDS.items():
        h = heap(board) if board != "xiao_esp32s3_erm" else None
        size = mpy_size(board)
        boards[board] = {"chip": chip, "heap": h, "mpy": size}
        row = [
            board,
            chip,
            h["high_water"] if h else "-",
            h["above_imports"] if h else "-",
            size["files"],
            size["bytes"],
        ]
        rows.append(row)
        md_rows.append(row)
    headers = ["board", "chip", "heap high-water B", "run-time heap B", ".mpy files", ".mpy bytes"]
    print(table(headers, rows))
    t = day_times()
    total_ms = sum(t[n] for n in ("radio_off_ms", "advertising_ms", "connected_ms", "deep_sleep_ms"))
    times = ", ".join(f"{k}={v:.0f}" for k, v in t.items())
    print(f"\nscripted day (simulated {total_ms / 1000:.0f} s): {times}")
    models = {chip: power_model(t, chip) for chip in ("esp32c3", "esp32s3")}
    # the script's hugs and buzzes once in a 24 h day, radio states in the script's proportions
    models.update({chip + " (24 h)": power_model(t, chip, 86_400_000.0) for chip in ("esp32c3", "esp32s3")})
    prow = [
        [c, m["stock_avg_ma"], m["stock_hours"], m["light_sleep_avg_ma"], m["light_sleep_hours"]]
        for c, m in models.items()
    ]
    pheaders = [
        "chip (motor/LED spread over)",
        "stock MP avg mA",
        "hours (200 mAh)",
        "light-sleep avg mA",
        "hours (200 mAh)",
    ]
    print(table(pheaders, prow))
    shares = ", ".join(f"{k[:-3]} {100 * v / total_ms:.1f}%" for k, v in t.items() if k.endswith("_ms"))
    md = (
        "Heap: `gc.mem_alloc()` high-water over the scripted day under the official MicroPython WebAssembly "
        "build (one top-level call per step); run-time heap = above the figure after importing hugproto + "
        "hugband. `.mpy`: `hugapp.bandtools.build` (mpy-cross 1.29) per board.\n\n"
        + md_table(headers, md_rows)
        + f"\n\nPower model: time per state over the scripted day ({total_ms / 1000:.0f} s simulated: "
        + shares
        + ") x datasheet currents (see tests/bench/bench_band.py for figures and sources), "
        "extrapolated as a duty cycle; 200 mAh cell. Stock MicroPython cannot light-sleep with BLE on; "
        "the light-sleep column is the ESP-IDF automatic-light-sleep build (DESIGN.md figures). Rows: the "
        "script's motor/LED time as a duty cycle (81 s of nearly back-to-back hugs), and the same "
        "events once "
        "in 24 h.\n\n" + md_table(pheaders, prow)
    )
    data = {"boards": boards, "day_times_ms": t, "power": models, "cell_mah": CELL_MAH}
    save("band", data, md)
    return data


if __name__ == "__main__":
    main()
