"""The haptic pattern catalogue and per-sender signatures.

A pattern is a run of steps, each (level 0..255, duration in 10 ms units), stored as byte
pairs. `render` turns (pattern, sender signature, intensity, repeat) into steps in a
caller-owned buffer, so the band plays a hug without allocating.
"""

from hugproto.compat import const
from hugproto.errors import Malformed

HUG = const(1)
BIG_HUG = const(2)
HUG_BACK = const(3)
FELT_TICK = const(4)
PAIRING = const(5)
ERROR = const(6)
LOW_BATTERY = const(7)
IDENTIFY = const(8)
RESET_CONFIRM = const(9)
PAIRED = const(10)  # after the rising wave, ``frames.pairing_code(key)`` times (2..5): count them

NAMES = (
    "",
    "hug",
    "big hug",
    "hug back",
    "felt",
    "pairing",
    "error",
    "low battery",
    "identify",
    "reset",
    "paired",
)

STEP_MS = const(10)
MAX_STEPS = const(48)
MAX_REPEAT = const(5)
MIN_FELT_LEVEL = const(60)
_REPEAT_GAP = const(30)
_BIG_HUG_SUSTAIN = const(1)

# Index = pattern id; bytes are (level, duration/10ms) pairs.
_BODIES = (
    b"",
    b"\xb4\x19\x00\x0f\xdc\x28",
    b"\xff\x1e\xc8\x3c\x00\x0a",
    b"\xc8\x0f\x00\x0a\xc8\x0f\x00\x0a\xff\x23",
    b"\xa0\x06",
    b"\x96\x0a\x00\x0a\x96\x0a\x00\x0a\x96\x0a\x00\x0a\xff\x1e",
    b"\xff\x28\x00\x14\xff\x28",
    b"\x78\x14\x00\x1e\x50\x14",
    b"\xff\x14\x00\x14\xff\x14\x00\x14\xff\x14",
    b"\xff\x64",
    b"\xff\x0c",
)

SIGNATURE_NONE = const(0)
SIGNATURE_PAIRED = const(7)  # the wave: what the band plays before a pairing's counted buzzes
NUM_SIGNATURES = const(8)
SIGNATURE_NAMES = (
    "none",
    "two short",
    "one long",
    "three short",
    "short-long",
    "long-short",
    "four short",
    "wave",
)

# A sender's motif, played once before the body so the wearer knows who it was.
_MOTIFS = (
    b"",
    b"\xdc\x08\x00\x08\xdc\x08\x00\x14",
    b"\xdc\x19\x00\x14",
    b"\xc8\x06\x00\x06\xc8\x06\x00\x06\xc8\x06\x00\x14",
    b"\xdc\x08\x00\x08\xdc\x19\x00\x14",
    b"\xdc\x19\x00\x08\xdc\x08\x00\x14",
    b"\xc8\x05\x00\x05\xc8\x05\x00\x05\xc8\x05\x00\x05\xc8\x05\x00\x14",
    b"\x64\x0a\xb4\x0a\xff\x0a\x00\x14",
)

BUFFER_SIZE = const(96)  # 2 * MAX_STEPS


def is_pattern(pattern: int) -> bool:
    return 0 < pattern < len(_BODIES)


def _scale(level: int, intensity: int) -> int:
    if level == 0:
        return 0
    scaled = level * intensity // 255
    return scaled if scaled > MIN_FELT_LEVEL else MIN_FELT_LEVEL


def render(pattern: int, signature: int, intensity: int, repeat: int, out: bytearray) -> int:
    """Write the steps into `out` (at least BUFFER_SIZE bytes); return how many steps."""
    if not is_pattern(pattern):
        raise Malformed("unknown haptic pattern %d" % pattern)
    if not 0 <= signature < NUM_SIGNATURES:
        raise Malformed("unknown sender signature %d" % signature)
    if not 1 <= intensity <= 255:
        raise Malformed("intensity must be 1..255, got %d" % intensity)
    if not 1 <= repeat <= MAX_REPEAT:
        raise Malformed("repeat must be 1..%d, got %d" % (MAX_REPEAT, repeat))
    motif = _MOTIFS[signature]
    body = _BODIES[pattern]
    steps = (len(motif) + len(body) * repeat) // 2 + repeat - 1
    if steps > MAX_STEPS or len(out) < 2 * steps:
        raise Malformed("pattern needs %d steps; buffer holds %d" % (steps, len(out) // 2))
    n = 0
    for i in range(0, len(motif), 2):
        out[2 * n] = _scale(motif[i], intensity)
        out[2 * n + 1] = motif[i + 1]
        n += 1
    for r in range(repeat):
        if r:
            out[2 * n] = 0
            out[2 * n + 1] = _REPEAT_GAP
            n += 1
        for i in range(0, len(body), 2):
            out[2 * n] = _scale(body[i], intensity)
            duration = body[i + 1]
            if pattern == BIG_HUG and i == 2 * _BIG_HUG_SUSTAIN:
                duration = duration // 2 + duration * intensity // 255
            out[2 * n + 1] = duration
            n += 1
    return n


def duration_ms(steps: bytes | bytearray, n: int) -> int:
    """How long `n` rendered steps play."""
    total = 0
    for i in range(n):
        total += steps[2 * i + 1]
    return total * STEP_MS
