"""Every decoder fuzzed under CPython: only the layer's own errors may escape.

* hugproto (BLE frames, advertising): the seeded fuzz loop of fuzzcore.py (100,000 inputs, the same
  code that runs under real MicroPython in test_attack_fuzz_mp.py) plus hypothesis for structure.
* the relay envelope (open_envelope -> EnvelopeError): random bytes, and authentic envelopes (correct
  AEAD) around random plaintexts and JSON-ish bodies, so the parser behind the AEAD is fuzzed too.
* hug payloads (Hug.from_payload -> HugError): JSON-ish values and mutated valid payloads.

Everything is deterministic (fixed seeds, derandomized hypothesis) so CI sees the same inputs.
"""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import fuzzcore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hugapp.core import envelope
from hugapp.core.envelope import EnvelopeError, open_envelope
from hugapp.core.hugs import GESTURE_SQUEEZE, GESTURE_TAP, Hug, HugError
from hugproto import adv, frames, pairing
from hugproto.errors import ProtocolError

SEED = 0x48554721
BULK_INPUTS = 100_000
FUZZ = settings(max_examples=2_000, derandomize=True, suppress_health_check=list(HealthCheck), deadline=None)

# -------------------------------------------------------------------------------- hugproto


def test_bulk_decoder_fuzz_100k_inputs() -> None:
    counts = fuzzcore.Fuzzer(SEED).run(BULK_INPUTS)
    print(fuzzcore.report(counts))
    assert fuzzcore.total(counts) == BULK_INPUTS
    assert len(counts) == 12, "every decoder was reached"
    # each decoder saw inputs it accepted and inputs it rejected (the generator reaches past the MAC)
    assert all(a > 0 and r > 0 for a, r in counts.values()), counts


def _session(role: int) -> frames.Session:
    return frames.Session(fuzzcore.KEY, fuzzcore.BAND_NONCE, fuzzcore.PHONE_NONCE, role)


def _only_protocol_errors(fn: Any, data: bytes) -> object | None:
    try:
        return fn(data)
    except ProtocolError:
        return None


@FUZZ
@given(data=st.binary(max_size=24), role=st.sampled_from([frames.BAND, frames.PHONE]))
def test_session_open_raw_bytes(data: bytes, role: int) -> None:
    s = _session(role)
    assert _only_protocol_errors(s.open, data) is None  # no MAC, no acceptance
    assert s.rx_counter == 0


@FUZZ
@given(
    kind=st.sampled_from(sorted(frames._SESSION_KINDS)),  # pyright: ignore[reportPrivateUsage]
    counter=st.integers(0, 0xFFFFFFFF),
    fields=st.binary(min_size=10, max_size=10),
    role=st.sampled_from([frames.BAND, frames.PHONE]),
)
def test_session_open_authentic_frames_with_any_fields(
    kind: int, counter: int, fields: bytes, role: int
) -> None:
    """A correct MAC over arbitrary counter and field bytes: field checks behind the MAC hold."""
    receiver, sender = _session(role), _session(1 - role)
    length = frames.frame_length((frames.VERSION << 5) | kind)
    body = bytes([(frames.VERSION << 5) | kind]) + struct.pack("<I", counter) + fields[: length - 9]
    data = body + sender._tx.digest(body)[: frames.MAC_LEN]  # pyright: ignore[reportPrivateUsage]
    msg = _only_protocol_errors(receiver.open, data)
    if msg is None:
        assert receiver.rx_counter == 0
    else:
        assert isinstance(msg, frames.Message)
        sender.tx_counter = counter - 1
        assert sender.seal(msg) == data


@FUZZ
@given(data=st.binary(max_size=24), with_key=st.booleans())
def test_handshake_decoders(data: bytes, with_key: bool) -> None:
    _only_protocol_errors(lambda d: frames.decode_state(d, fuzzcore.KEY if with_key else None), data)
    _only_protocol_errors(lambda d: frames.decode_auth(d, fuzzcore.KEY, fuzzcore.BAND_NONCE), data)
    _only_protocol_errors(lambda d: pairing.check_confirm(d, fuzzcore.KEY, fuzzcore.BAND_NONCE), data)
    _only_protocol_errors(lambda d: pairing.decode_pub(d, frames.PAIR_PUB), data)
    _only_protocol_errors(lambda d: pairing.decode_pub(d, frames.BAND_PUB), data)
    _only_protocol_errors(frames.frame_kind, data)


@settings(max_examples=200, derandomize=True, suppress_health_check=list(HealthCheck), deadline=None)
@given(
    halves=st.lists(st.binary(max_size=20), min_size=1, max_size=4),
    low_order=st.booleans(),
    confirm=st.binary(max_size=20),
)
def test_band_pairing_takes_any_bytes(halves: list[bytes], low_order: bool, confirm: bytes) -> None:
    """The band's pairing state machine (X25519 included) with any public-key frames and confirm."""
    band = pairing.BandPairing(bytes(range(1, 33)))
    for i, part in enumerate(halves):
        body = bytes(16) if low_order else (part + bytes(16))[:16]
        frame = bytes([(frames.VERSION << 5) | frames.PAIR_PUB, i % 2 if len(part) % 5 else 2]) + body
        _only_protocol_errors(band.on_pub, frame if len(part) % 7 else frame[:-1])
    if band.busy:
        _only_protocol_errors(band.work, 510)
    if band.band_pub:
        assert not low_order, "a low-order key was taken"
        data = bytes([(frames.VERSION << 5) | frames.PAIR_CONFIRM]) + (confirm + bytes(12))[:12]
        assert _only_protocol_errors(lambda d: band.finish(d, fuzzcore.BAND_NONCE), data) is None


_ad_structure = st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=30)).map(
    lambda t: bytes([t[0], t[1]]) + t[2]
)


@FUZZ
@given(payload=st.one_of(st.binary(max_size=40), st.lists(_ad_structure, max_size=6).map(b"".join)))
def test_advertising_decoders(payload: bytes) -> None:
    _only_protocol_errors(adv.fields, payload)
    state = _only_protocol_errors(adv.hug_state, payload)
    assert state is None or -1 <= state <= 255  # type: ignore[operator]
    token = _only_protocol_errors(adv.hug_token, payload)
    assert token is None or len(token) == adv.TOKEN_LEN  # type: ignore[arg-type]
    name = _only_protocol_errors(adv.local_name, payload)
    assert name is None or isinstance(name, str)


# -------------------------------------------------------------------------------- relay envelope

KEY = bytes(range(32))
TOPIC = "hug/v1/in/mailbox/0123"
SENDER = "a" * 32
CANDIDATES = [SENDER, "b" * 32]
_JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(10**300), 10**300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
# Nesting is bounded here; deeper nesting is covered by its own test below.
JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


def _authentic(plain: bytes, sender: str = SENDER) -> bytes:
    return envelope.seal_bytes(KEY, envelope._ad(TOPIC, sender), plain)  # pyright: ignore[reportPrivateUsage]


def _open(data: bytes) -> envelope.Message | None:
    try:
        return open_envelope(KEY, TOPIC, CANDIDATES, data)
    except EnvelopeError:
        return None


def _header(rng: random.Random) -> bytes:
    return struct.pack(">16sd", rng.randbytes(16), rng.choice([0.0, -1.0, 1.8e9, math.inf, math.nan, 1e308]))


def test_envelope_bulk_fuzz() -> None:
    rng = random.Random(SEED)
    good = _authentic(_header(rng) + json.dumps({"f": SENDER, "t": "hug", "p": {"x": 1}}).encode())
    opened = rejected = 0
    for i in range(12_000):
        mode = i % 4
        if mode == 0:
            data = rng.randbytes(rng.randrange(0, 120))
        elif mode == 1:  # mutated genuine envelope
            buf = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
            data = bytes(buf[: rng.randrange(len(buf) + 1)] if rng.random() < 0.2 else buf)
        elif mode == 2:  # authentic, random plaintext
            data = _authentic(rng.randbytes(rng.randrange(0, 60)))
        else:  # authentic, JSON-ish body with random fields
            body: dict[str, Any] = {}
            for k in ("f", "t", "p"):
                if rng.random() < 0.85:
                    body[k] = rng.choice([SENDER, "b" * 32, "hug", 1, None, [], {}, {"a": [1]}, "", 2.5])
            text = json.dumps(body if rng.random() < 0.9 else [body])
            if rng.random() < 0.1:
                text = text[: rng.randrange(len(text) + 1)]
            data = _authentic(_header(rng) + text.encode())
        msg = _open(data)
        if msg is None:
            rejected += 1
        else:
            opened += 1
            assert msg.sender in CANDIDATES
            assert isinstance(msg.payload, dict)
    print(f"envelope: 12000 inputs, {opened} opened, {rejected} rejected")
    assert opened > 0
    assert rejected > 0


@FUZZ
@given(body=JSON, sender=st.sampled_from(CANDIDATES), prefix=st.binary(min_size=0, max_size=30))
def test_envelope_authentic_json_bodies(body: object, sender: str, prefix: bytes) -> None:
    data = _authentic(prefix + json.dumps(body).encode(), sender)
    msg = _open(data)
    assert msg is None or msg.sender == sender


@FUZZ
@given(data=st.binary(max_size=200))
def test_envelope_raw_bytes(data: bytes) -> None:
    assert _open(data) is None


def test_deeply_nested_authentic_envelope_is_garbled() -> None:
    data = _authentic(struct.pack(">16sd", bytes(16), 1.0) + b"[" * 15_000)
    assert _open(data) is None


# -------------------------------------------------------------------------------- hug payloads

VALID_HUG = Hug(
    hug_id="h1",
    sender="m1",
    gesture=GESTURE_SQUEEZE,
    value=200,
    duration_ms=900,
    pressed_at=1.8e9,
    hug_back_of="h0",
    folded=("h2", "h3"),
    count=3,
).to_payload()


def _from_payload(payload: object) -> Hug | None:
    try:
        return Hug.from_payload(payload)
    except HugError:
        return None


@settings(max_examples=3_000, derandomize=True, suppress_health_check=list(HealthCheck), deadline=None)
@given(payload=JSON)
def test_hug_payload_any_json(payload: object) -> None:
    _from_payload(payload)


@settings(max_examples=3_000, derandomize=True, suppress_health_check=list(HealthCheck), deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from([*VALID_HUG, "extra"]), st.one_of(JSON, st.just(VALID_HUG["id"])), max_size=4
    ),
    drop=st.sets(st.sampled_from(list(VALID_HUG)), max_size=2),
)
def test_hug_payload_mutated_fields(changes: dict[str, object], drop: set[str]) -> None:
    payload = {k: v for k, v in VALID_HUG.items() if k not in drop} | changes
    hug = _from_payload(payload)
    if hug is not None:
        assert Hug.from_payload(hug.to_payload()) == hug


def test_hug_payload_bulk_fuzz() -> None:
    rng = random.Random(SEED)
    leaves: list[object] = [
        None,
        True,
        False,
        0,
        1,
        -1,
        5,
        6,
        255,
        256,
        65535,
        65536,
        100_000,
        100_001,
        10**300,
        1.5,
        math.nan,
        math.inf,
        -math.inf,
        0.0,
        1.8e9,
        "",
        "tap",
        "squeeze",
        "x" * 65,
        "h9",
        "bad id!",
        [],
        {},
        ["h5"],
        ["h1"],
        [1],
        ["h%d" % i for i in range(1001)],
    ]
    accepted = 0
    for _ in range(12_000):
        payload: dict[object, object] = dict(VALID_HUG)
        for _ in range(rng.randrange(0, 4)):
            op = rng.random()
            if op < 0.7:
                payload[rng.choice(list(VALID_HUG))] = rng.choice(leaves)
            elif op < 0.85:
                payload.pop(rng.choice(list(VALID_HUG)), None)
            else:
                payload[rng.choice(["extra", 1, None, "V"])] = rng.choice(leaves)
        hug = _from_payload(payload if rng.random() < 0.97 else rng.choice([[payload], "x", 1, None]))
        accepted += hug is not None
    print(f"hug payloads: 12000 inputs, {accepted} accepted")
    assert 0 < accepted < 12_000
    assert GESTURE_TAP != GESTURE_SQUEEZE


def test_hug_payload_with_a_huge_integer_time_is_a_hug_error() -> None:
    assert _from_payload({**VALID_HUG, "pressed_at": 10**400}) is None
