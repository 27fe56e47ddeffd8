"""Every hugproto decoder fuzzed under real MicroPython (the official WebAssembly build, via Node):
30,000 inputs from the same seeded stream as the CPython run, only ProtocolError subclasses escape,
and both interpreters accept and reject exactly the same inputs."""

from __future__ import annotations

import re
from collections.abc import Callable

import fuzzcore
import pytest

SEED = 0x48554721
MP_INPUTS = 30_000
_LINE = re.compile(r"^(\S+)\s+(\d+) inputs\s+(\d+) accepted\s+(\d+) rejected$")


@pytest.mark.micropython
def test_decoders_fuzzed_under_real_micropython(micropython: Callable[..., str]) -> None:
    out = micropython(
        f"import fuzzcore\nf = fuzzcore.Fuzzer({SEED})\nprint(fuzzcore.report(f.run({MP_INPUTS})))\n",
        libs=[str(fuzzcore.__file__)],
        timeout=110,
    )
    print(out)
    counts = {m.group(1): (int(m.group(3)), int(m.group(4))) for m in map(_LINE.match, out.splitlines()) if m}
    assert fuzzcore.total(counts) == MP_INPUTS
    assert f"total {MP_INPUTS} inputs" in out
    assert len(counts) == 12, "every decoder was reached"
    assert all(a > 0 and r > 0 for a, r in counts.values()), counts
    # the same stream under CPython: identical verdicts, input for input in aggregate
    assert counts == fuzzcore.Fuzzer(SEED).run(MP_INPUTS)
