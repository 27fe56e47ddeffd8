"""`hugbutton demo --ui`: the scripted day with both phones' apps side by side, as a user runs it.

The window is saved as demo-ui.png (to HUG_SCREENSHOTS=DIR when set, as the README's pictures are
made, otherwise to the test's temporary folder).
"""

from __future__ import annotations

import collections
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from test_ui import check_png, shots_dir


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the rows (RGB bytes) of an 8-bit RGB/RGBA PNG, as Kivy writes them."""
    data = path.read_bytes()
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8, depth
    assert colour in (2, 6), colour
    bpp = 3 if colour == 2 else 4
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [b"".join(r[x * bpp : x * bpp + 3] for x in range(width)) for r in rows]


def demo_ui(env: dict[str, str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`hugbutton demo --ui` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "hugapp.cli", "demo", "--ui"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


@pytest.mark.slow
def test_demo_ui_day_with_both_apps(xdisplay: str, tmp_path: Path) -> None:
    shot = shots_dir(tmp_path) / "demo-ui.png"
    shot.unlink(missing_ok=True)
    env = dict(os.environ, DISPLAY=xdisplay, HUG_DEMO_SCREENSHOT=str(shot), PYTHONUNBUFFERED="1")
    env.pop("WAYLAND_DISPLAY", None)
    proc = demo_ui(env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = re.search(
        r"^(\d+) hugs sent by Mia, (\d+) received by Mum, (\d+) felt, (\d+) lost, (\d+) duplicates;",
        proc.stdout,
        re.M,
    )
    assert summary, out[-3000:]
    sent, received, felt, lost, duplicates = map(int, summary.groups())
    assert (lost, duplicates) == (0, 0)
    assert sent == received == felt >= 6

    check_png(shot)
    width, height, rows = png_pixels(shot)
    assert width >= 2 * 400, width  # two phones side by side
    assert height >= 700, height
    pixels = collections.Counter(row[i : i + 3] for row in rows for i in range(0, len(row), 3))
    assert len(pixels) > 50, "a few flat colours: nothing was drawn"
    assert pixels.most_common(1)[0][1] < 0.95 * width * height
    half = width // 2
    left = [row[: half * 3] for row in rows]
    right = [row[half * 3 : 2 * half * 3] for row in rows]
    assert left != right, "both halves look the same: each phone shows its own app"


def test_demo_ui_without_a_display_says_so_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    for display in (None, ":3999"):  # none at all, and one nobody serves
        if display:
            env["DISPLAY"] = display
        proc = demo_ui(env, timeout=60, cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("hugbutton demo: --ui: "), lines
        assert "display" in lines[0], lines
