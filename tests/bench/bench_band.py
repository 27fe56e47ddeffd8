"""Band benchmark: heap high-water under real MicroPython, .mpy size per board, and a power model.

Real-MicroPython bands (the unix port, each band a `micropython -X heapsize=<cap>` process loading the
build's .mpy files): the live-heap high-water of the bands through the demo day (`hugbutton demo
--json`) and through the fault test (tests/faults, read from each band's log), sampled as
gc.mem_alloc() after a collection every 250 ms at the board's cap; the import cost of the .mpy set on
this 64-bit port and on the 32-bit WebAssembly build loading the same files; and the smallest heap at
which a band still gets through the demo day (the cap lowered by 8 KB steps, HUGSIM_BAND_HEAP_KB).

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

import json
import os
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


_IMPORT = re.compile(r"import_bytes=(\d+) modules=(\d+)")
_LOG_PEAK = re.compile(r"hugsim: live heap high-water (\d+) B at a (\d+) KB cap")


def _modules(build: Path) -> list[str]:
    names = []
    for pkg in sorted((build / "lib").iterdir()):
        for f in sorted(pkg.glob("*.mpy")):
            names.append(pkg.name if f.stem == "__init__" else f"{pkg.name}.{f.stem}")
    return names


def import_cost(board: str) -> dict[str, int]:
    """Bytes of heap the build's .mpy set takes once imported: on this port (the board modules and
    asyncio imported first) and on the 32-bit WebAssembly build (tests/bench/import_mpy.mjs)."""
    from hugsim.band.mpband import firmware_image, micropython_command

    image = firmware_image(board)
    build = image / "flash"
    mods = _modules(build)
    code = (
        f"import sys\nsys.path[:] = [{str(image / 'port')!r}, '', '.frozen', 'lib']\n"
        "import gc, asyncio, simlink, machine, bluetooth, esp32, neopixel\n"
        "gc.collect()\nsim = gc.mem_alloc()\n"
        + "".join(f"import {m}\n" for m in mods)
        + "gc.collect()\nprint('import_bytes=%d modules=%d' % (gc.mem_alloc() - sim, "
        + str(len(mods))
        + "))\n"
    )
    unix = subprocess.run(
        [micropython_command(), "-X", "heapsize=1m", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=build,
        check=True,
    )
    wasm = subprocess.run(
        ["node", str(REPO / "tests" / "bench" / "import_mpy.mjs"), str(build)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=True,
    )
    mu, mw = _IMPORT.search(unix.stdout), _IMPORT.search(wasm.stdout)
    assert mu is not None, unix.stdout + unix.stderr
    assert mw is not None, wasm.stdout + wasm.stderr
    return {"unix_64bit": int(mu.group(1)), "wasm_32bit": int(mw.group(1)), "modules": int(mu.group(2))}


def demo_day(heap_kb: int | None = None) -> dict[str, Any] | None:
    """`hugbutton demo --json` (the scripted day) with real-MicroPython bands; None if it failed."""
    env = dict(os.environ)
    if heap_kb:
        env["HUGSIM_BAND_HEAP_KB"] = str(heap_kb)
    proc = subprocess.run(
        [sys.executable, "-m", "hugapp.cli", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        env=env,
    )
    if proc.returncode != 0:
        return None
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if figures.get("lost") or figures.get("duplicates"):
        return None
    return figures


def fault_test_heap() -> dict[str, int]:
    """Run the fault test (tests/faults, about 3 minutes); the highest live heap of its bands."""
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--basetemp",
                tmp,
                "tests/faults",
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=REPO,
        )
        peaks = [
            (int(m.group(1)), int(m.group(2)))
            for log in Path(tmp).rglob("band.log")
            for m in _LOG_PEAK.finditer(log.read_text(errors="replace"))
        ]
    assert proc.returncode == 0, proc.stdout[-3000:]
    return {"bands": len(peaks), "peak_bytes": max(p for p, _ in peaks), "cap_kb": max(c for _, c in peaks)}


def smallest_heap(start_kb: int, step_kb: int = 8) -> int:
    """The smallest cap (KB, board modules included) at which both bands get through the demo day."""
    ok = start_kb
    kb = start_kb - step_kb
    while kb > 0 and demo_day(kb) is not None:
        ok = kb
        kb -= step_kb
    return ok


def real_micropython() -> dict[str, Any]:
    from hugband import board as boards
    from hugsim.band.mpband import SIM_HEAP_KB, heap_cap_kb

    cap = heap_cap_kb(boards.load("xiao_esp32c3"))
    imports = {b: import_cost(b) for b in ("xiao_esp32c3", "xiao_esp32s3")}
    day = demo_day()
    assert day is not None, "the demo day failed at the board's cap"
    faults = fault_test_heap()
    smallest = smallest_heap(cap)
    return {
        "cap_kb": cap,
        "sim_modules_kb": SIM_HEAP_KB,
        "import_bytes": imports,
        "demo_day_heap_peak_bytes": day["band_heap_peak_bytes"],
        "fault_test_heap": faults,
        "smallest_cap_kb_for_demo_day": smallest,
    }


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
    print(
        "\nreal-MicroPython bands (unix port, capped heap): demo day, fault test, import cost, smallest heap"
    )
    real = real_micropython()
    imp = real["import_bytes"]
    rrows = [
        [
            "C3 cap (heap_kb + board modules)",
            f"{real['cap_kb']} KB ({real['sim_modules_kb']} KB board modules)",
        ],
        ["live heap high-water, demo day", f"{real['demo_day_heap_peak_bytes']:,} B"],
        [
            "live heap high-water, fault test",
            f"{real['fault_test_heap']['peak_bytes']:,} B ({real['fault_test_heap']['bands']} band runs)",
        ],
        *[
            [
                f".mpy set import, {b}",
                f"{v['unix_64bit']:,} B (64-bit unix) / {v['wasm_32bit']:,} B (32-bit wasm)",
            ]
            for b, v in imp.items()
        ],
        ["smallest cap that gets through the demo day", f"{real['smallest_cap_kb_for_demo_day']} KB"],
    ]
    print(table(["figure", "value"], rrows))
    md += (
        "\n\nReal-MicroPython bands (unix port, `-X heapsize` at the board's budget plus the board modules; "
        "live heap = `gc.mem_alloc()` after a collection, sampled every 250 ms):\n\n"
        + md_table(["figure", "value"], rrows)
    )
    data = {
        "boards": boards,
        "day_times_ms": t,
        "power": models,
        "cell_mah": CELL_MAH,
        "real_micropython": real,
    }
    save("band", data, md)
    return data


if __name__ == "__main__":
    main()
