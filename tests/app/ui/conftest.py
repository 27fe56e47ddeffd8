"""UI tests: a private Xvfb per session; each scenario runs tests/app/ui/driver.py in its own process
on it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from testkit import require_tool


@pytest.fixture(scope="session")
def xdisplay() -> Iterator[str]:
    """A virtual X server (Xvfb with GLX, Mesa's llvmpipe) on a free display number; stopped after."""
    xvfb = require_tool("Xvfb")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            xvfb,
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            "1024x800x24",
            "-nolisten",
            "tcp",
            "+extension",
            "GLX",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as r:
            number = r.readline().strip()
        if not number:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"Xvfb did not start: {err[-2000:]}")
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
