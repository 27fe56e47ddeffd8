"""The golden-vector suite. MicroPython-compatible: the same cases run under CPython and
under real MicroPython (tests/test_vectors.py runs both)."""

from cases import load_json

from hugproto import adv, frames, patterns
from hugproto.errors import ProtocolError

V = load_json("tests/vectors/frames.json")

KEY = bytes.fromhex(V["band_key"])
BAND_NONCE = bytes.fromhex(V["band_nonce"])
PHONE_NONCE = bytes.fromhex(V["phone_nonce"])


def _session(role, counter=0):
    s = frames.Session(KEY, BAND_NONCE, PHONE_NONCE, role)
    s.tx_counter = counter
    s.rx_counter = counter
    return s


def _receiver(sender):
    return frames.PHONE if sender == "band" else frames.BAND


def _open_as(to, data, rx_counter=0):
    if to == "state":
        return frames.decode_state(data, KEY)
    if to == "auth":
        return frames.decode_auth(data, KEY, BAND_NONCE)
    if to == "pair_key":
        return frames.decode_pair_key(data, BAND_NONCE)
    return _session(frames.BAND if to == "band" else frames.PHONE, rx_counter).open(data)


def _expect_error(fn, data, name, expected=None):
    try:
        fn(data)
    except ProtocolError as exc:
        if expected is not None and type(exc).__name__ != expected:
            raise AssertionError("%s: expected %s, got %s: %s" % (name, expected, type(exc).__name__, exc))
        return
    raise AssertionError("%s: %s was accepted" % (name, bytes(data).hex()))


def case_valid_frames_encode_byte_exact():
    for v in V["valid"]:
        msg = getattr(frames, v["type"])(*v["fields"])
        s = _session(frames.BAND if v["from"] == "band" else frames.PHONE, v["counter"] - 1)
        got = s.seal(msg).hex()
        assert got == v["hex"], "%s: encoded %s, vector %s" % (v["name"], got, v["hex"])
        assert len(v["hex"]) // 2 <= frames.MAX_FRAME


def case_valid_frames_decode():
    for v in V["valid"]:
        s = _session(_receiver(v["from"]), v["counter"] - 1)
        msg = s.open(bytes.fromhex(v["hex"]))
        assert type(msg).__name__ == v["type"], v["name"]
        assert list(msg.fields()) == v["fields"], "%s: %r" % (v["name"], msg.fields())
        assert s.rx_counter == v["counter"], v["name"]


def case_handshake_frames():
    for v in V["special"]:
        data = bytes.fromhex(v["hex"])
        key = bytes.fromhex(v["key"])
        f = v["fields"]
        if v["type"] == "State":
            assert frames.encode_state(key, bytes.fromhex(f[0]), f[1], f[2], f[3]) == data, v["name"]
            st = frames.decode_state(data, key)
            assert (st.nonce.hex(), st.flags, st.battery, st.firmware) == (f[0], f[1], f[2], f[3]), v["name"]
            unverified = frames.decode_state(data, None)
            assert unverified.nonce == st.nonce
        elif v["type"] == "Auth":
            assert frames.encode_auth(key, BAND_NONCE, bytes.fromhex(f[0])) == data
            assert frames.decode_auth(data, key, BAND_NONCE).hex() == f[0]
            band = frames.band_session(key, BAND_NONCE, data)
            auth, phone = frames.phone_session(key, BAND_NONCE, PHONE_NONCE)
            assert auth == data
            assert type(phone.open(band.seal(frames.AuthOk(1, 50, 0)))).__name__ == "AuthOk"
        else:
            assert frames.encode_pair_key(key, BAND_NONCE) == data
            assert frames.decode_pair_key(data, BAND_NONCE) == key


def _flip_all(data, fn, name):
    flips = 0
    for bit in range(8 * len(data)):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        _expect_error(fn, bytes(bad), "%s bit %d" % (name, bit))
        flips += 1
    return flips


def case_every_flipped_bit_is_rejected():
    flips = 0
    for v in V["valid"]:
        to = "band" if v["from"] == "phone" else "phone"
        counter = v["counter"] - 1
        flips += _flip_all(bytes.fromhex(v["hex"]), lambda d: _open_as(to, d, counter), v["name"])
    for v in V["special"]:
        data = bytes.fromhex(v["hex"])
        if v["type"] == "State":
            key = bytes.fromhex(v["key"])
            flips += _flip_all(data, lambda d: frames.decode_state(d, key), v["name"])
        elif v["type"] == "Auth":
            flips += _flip_all(data, lambda d: frames.decode_auth(d, KEY, BAND_NONCE), v["name"])
        else:
            flips += _flip_all(data, lambda d: frames.decode_pair_key(d, BAND_NONCE), v["name"])
    assert flips > 2000, flips
    print("flipped bits rejected:", flips)


def case_invalid_frames_rejected_with_expected_error():
    for v in V["invalid"]:
        data = bytes.fromhex(v["hex"])
        rx = v.get("rx_counter", 0)
        if v["to"] in ("band", "phone"):
            s = _session(frames.BAND if v["to"] == "band" else frames.PHONE, rx)
            _expect_error(s.open, data, v["name"], v["error"])
            assert s.rx_counter == rx, "%s changed the session" % v["name"]
        else:
            _expect_error(lambda d: _open_as(v["to"], d, rx), data, v["name"], v["error"])


def case_rejected_frame_changes_nothing():
    valid = [v for v in V["valid"] if v["from"] == "phone"]
    band = _session(frames.BAND)
    for v in valid:
        band.rx_counter = v["counter"] - 1
        bad = bytearray.fromhex(v["hex"])
        bad[-1] ^= 1
        _expect_error(band.open, bytes(bad), v["name"], "Unauthenticated")
        assert band.rx_counter == v["counter"] - 1, "%s changed the session" % v["name"]
        band.open(bytes.fromhex(v["hex"]))
        assert band.rx_counter == v["counter"]
        _expect_error(band.open, bytes.fromhex(v["hex"]), v["name"], "Replayed")


def case_truncations_and_garbage_raise_only_protocol_errors():
    decoders = (
        lambda d: _open_as("band", d),
        lambda d: _open_as("phone", d),
        lambda d: frames.decode_state(d, KEY),
        lambda d: frames.decode_state(d, None),
        lambda d: frames.decode_auth(d, KEY, BAND_NONCE),
        lambda d: frames.decode_pair_key(d, BAND_NONCE),
    )
    samples = []
    for v in V["valid"] + V["special"]:
        data = bytes.fromhex(v["hex"])
        for n in range(len(data)):
            samples.append(data[:n])
    for head in range(256):
        samples.append(bytes((head,)) + bytes(19))
    for data in samples:
        for fn in decoders:
            try:
                fn(data)
            except ProtocolError:
                pass
    for data in samples:
        for fn in (adv.fields, adv.hug_state, adv.local_name):
            try:
                fn(data)
            except ProtocolError:
                pass


def case_seal_refuses_out_of_range_fields():
    s = _session(frames.BAND)
    for msg in (frames.Press(70000, 1, 1), frames.Press(1, 9, 1), frames.Press(1, 1, 0), frames.Felt(-1)):
        _expect_error(s.seal, msg, "seal %r" % (msg.fields(),), "Malformed")
    assert s.tx_counter == 0
    phone = _session(frames.PHONE)
    _expect_error(phone.seal, frames.Press(1, 1, 1), "phone sends press", "Malformed")
    _expect_error(s.seal, frames.Play(1, 0, 255, 1, 1), "band sends play", "Malformed")


def case_pattern_rendering():
    buf = bytearray(patterns.BUFFER_SIZE)
    for p in V["patterns"]:
        n = patterns.render(p["args"][0], p["args"][1], p["args"][2], p["args"][3], buf)
        assert buf[: 2 * n].hex() == p["steps"], p["args"]
    # the longest combination fits the buffer
    for pattern in range(1, len(patterns.NAMES)):
        for signature in range(patterns.NUM_SIGNATURES):
            n = patterns.render(pattern, signature, 255, patterns.MAX_REPEAT, buf)
            assert n <= patterns.MAX_STEPS
            for i in range(n):
                assert buf[2 * i] == 0 or buf[2 * i] >= patterns.MIN_FELT_LEVEL
    for args in ((0, 0, 255, 1), (99, 0, 255, 1), (1, 8, 255, 1), (1, 0, 0, 1), (1, 0, 255, 6)):
        _expect_error(
            lambda a: patterns.render(a[0], a[1], a[2], a[3], buf), args, "render %r" % (args,), "Malformed"
        )
