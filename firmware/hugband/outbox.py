"""The press outbox: every press waits here, flash-backed, until the phone acknowledges it.

Each press gets a sequence number (u16, wrapping). Acks are cumulative ("everything up to and including
seq"), compared with serial-number arithmetic (RFC 1982 style) so they keep working across the wrap.
Records are fixed-size (16 bytes) in one preallocated ring of ``capacity`` (default 32). When the ring
is full the **oldest** press is dropped to make room and ``dropped`` counts it (the phone sees the
counter in Status, and the gap in sequence numbers).

Record: seq u16, gesture u8, value u8, duration_ms u16, flags u8, reserved u8, t_ms u32, epoch_s u32.

Age of a press (sent in Press.age_s so the phone knows when it happened):
- pressed in this boot: exact, from the ticks time ``t_ms`` and ``now_ms``;
- pressed before a reboot: ticks mean nothing any more, so if the band's wall clock was set (SetTime)
  when the press was made, ``epoch_s`` was stored and age = now_epoch - epoch_s (if the clock is set
  again now); otherwise the age is unknown and reported as 0. Ages clamp to 0..65535 s.

Persistence (``to_bytes`` / ``from_bytes``): header ``b"HO"``, version, count, next_seq, dropped;
the records oldest first; then the first 4 bytes of SHA-256 over all of that. A file that is short,
long, of another version or fails the digest loads as an empty outbox and increments ``errors``
instead of raising. ``next_seq`` survives reboots; after a corrupt file it restarts from the caller's
``fallback_seq`` (BandLogic passes a random one so it does not repeat sequence numbers the phone has
already stored and would discard as duplicates).
"""

import hashlib
import struct

from hugband.ticks import diff
from hugproto.compat import const

_REC = const(16)
_REC_FMT = "<HBBHBBII"
_HEAD_FMT = "<2sBBHH"
_HEAD = const(8)
_DIGEST = const(4)
_VERSION = const(1)
_MAGIC = b"HO"
_THIS_BOOT = const(1)
_MAX_AGE = const(65535)
CAPACITY = const(32)


def seq_after(a: int, b: int) -> bool:
    """True when u16 sequence number ``a`` comes after ``b`` (serial-number arithmetic)."""
    d = (a - b) & 0xFFFF
    return 0 < d < 0x8000


class Outbox:
    def __init__(self, capacity: int = CAPACITY) -> None:
        if not 1 <= capacity <= 255:
            raise ValueError("outbox capacity must be 1..255")
        self.capacity = capacity
        self._ring = bytearray(capacity * _REC)
        self._head = 0
        self._len = 0
        self.next_seq = 1
        self.dropped = 0
        self.errors = 0

    def __len__(self) -> int:
        return self._len

    def clear(self, next_seq: int = -1) -> None:
        """Forget every press (factory reset); keep ``next_seq`` unless one is given."""
        self._head = 0
        self._len = 0
        self.dropped = 0
        if next_seq >= 0:
            self.next_seq = next_seq & 0xFFFF

    def add(self, gesture: int, value: int, duration_ms: int, now_ms: int, epoch_s: int = 0) -> int:
        """Store a press; return its sequence number. Full: the oldest press is dropped first."""
        if self._len >= self.capacity:
            self._head = (self._head + 1) % self.capacity
            self._len -= 1
            self.dropped = (self.dropped + 1) & 0xFFFF
        seq = self.next_seq
        self.next_seq = (seq + 1) & 0xFFFF
        off = ((self._head + self._len) % self.capacity) * _REC
        if duration_ms > 0xFFFF:
            duration_ms = 0xFFFF
        t = now_ms & 0xFFFFFFFF
        struct.pack_into(
            _REC_FMT, self._ring, off, seq, gesture, value, duration_ms, _THIS_BOOT, 0, t, epoch_s
        )
        self._len += 1
        return seq

    def ack(self, upto_seq: int) -> int:
        """Remove every press up to and including ``upto_seq``; return how many.

        An ack for a sequence number not yet issued is bogus: nothing changes and -1 is returned.
        """
        upto_seq &= 0xFFFF
        last = (self.next_seq - 1) & 0xFFFF
        if seq_after(upto_seq, last):
            return -1
        n = 0
        while self._len and not seq_after(self.seq_at(0), upto_seq):
            self._head = (self._head + 1) % self.capacity
            self._len -= 1
            n += 1
        return n

    def seq_at(self, i: int) -> int:
        """Sequence number of the i-th pending press (0 = oldest)."""
        return struct.unpack_from("<H", self._ring, ((self._head + i) % self.capacity) * _REC)[0]

    def get(self, i: int, now_ms: int, epoch_now: int = 0):
        """The i-th pending press (0 = oldest) as (seq, gesture, value, duration_ms, age_s)."""
        if not 0 <= i < self._len:
            raise IndexError("outbox index")
        off = ((self._head + i) % self.capacity) * _REC
        seq, gesture, value, duration, flags, _, t_ms, epoch = struct.unpack_from(_REC_FMT, self._ring, off)
        if flags & _THIS_BOOT:
            age = diff(now_ms & 0x3FFFFFFF, t_ms) // 1000
        elif epoch and epoch_now:
            age = epoch_now - epoch
        else:
            age = 0
        if age < 0:
            age = 0
        elif age > _MAX_AGE:
            age = _MAX_AGE
        return (seq, gesture, value, duration, age)

    def index_after(self, seq: int) -> int:
        """Index of the first pending press after ``seq`` (``len`` if none)."""
        i = 0
        while i < self._len and not seq_after(self.seq_at(i), seq):
            i += 1
        return i

    def pending(self, now_ms: int, epoch_now: int = 0):
        """Iterate the pending presses oldest first, as ``get`` returns them."""
        for i in range(self._len):
            yield self.get(i, now_ms, epoch_now)

    # -- persistence ---------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        n = self._len
        out = bytearray(_HEAD + n * _REC + _DIGEST)
        struct.pack_into(_HEAD_FMT, out, 0, _MAGIC, _VERSION, n, self.next_seq, self.dropped)
        for i in range(n):
            src = ((self._head + i) % self.capacity) * _REC
            dst = _HEAD + i * _REC
            out[dst : dst + _REC] = self._ring[src : src + _REC]
        body = _HEAD + n * _REC
        out[body:] = hashlib.sha256(memoryview(out)[:body]).digest()[:_DIGEST]
        return bytes(out)

    def from_bytes(self, data, fallback_seq: int = 1) -> bool:
        """Load a saved outbox; False (empty outbox, ``errors`` + 1) if missing parts or corrupt."""
        self._head = 0
        self._len = 0
        if data is None:  # no file yet: a fresh band, not an error
            self.next_seq = fallback_seq & 0xFFFF
            return False
        magic, version, n, next_seq, dropped = b"", 0, 0, 0, 0
        ok = len(data) >= _HEAD + _DIGEST
        if ok:
            magic, version, n, next_seq, dropped = struct.unpack_from(_HEAD_FMT, data, 0)
            body = _HEAD + n * _REC
            ok = magic == _MAGIC and version == _VERSION and len(data) == body + _DIGEST
            ok = ok and hashlib.sha256(memoryview(data)[:body]).digest()[:_DIGEST] == bytes(data[body:])
        if not ok:
            self.errors += 1
            self.next_seq = fallback_seq & 0xFFFF
            return False
        keep = n if n <= self.capacity else self.capacity
        skip = n - keep  # saved by a bigger outbox: keep the newest
        for i in range(keep):
            src = _HEAD + (skip + i) * _REC
            dst = i * _REC
            self._ring[dst : dst + _REC] = data[src : src + _REC]
            self._ring[dst + 6] = 0  # flags: not this boot any more
        self._len = keep
        self.next_seq = next_seq
        self.dropped = (dropped + skip) & 0xFFFF
        return True
