"""The golden-vector suite. MicroPython-compatible: the same cases run under CPython and
under real MicroPython (tests/test_vectors.py runs both)."""

from cases import load_json

from hugproto import adv, frames, pairing, patterns, x25519
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
    if to == "pair_confirm":
        return pairing.check_confirm(data, bytes.fromhex(V["pairing"]["band_key"]), BAND_NONCE)
    if to == "pair_pub":
        return pairing.decode_pub(data, frames.PAIR_PUB)
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
            assert pairing.encode_confirm(key, BAND_NONCE, bytes.fromhex(f[0])) == data
            assert pairing.confirm_nonce(data).hex() == f[0]
            pairing.check_confirm(data, key, BAND_NONCE)


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
            flips += _flip_all(data, lambda d: _open_as("pair_confirm", d), v["name"])
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
        lambda d: _open_as("pair_confirm", d),
        lambda d: _open_as("pair_pub", d),
        lambda d: pairing.decode_pub(d, frames.BAND_PUB),
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


def _h(text):
    return bytes.fromhex(text)


def case_x25519_rfc7748_vectors():
    # RFC 7748 section 5.2
    for scalar, u, out in (
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ):
        assert x25519.x25519(_h(scalar), _h(u)).hex() == out
    # the iteration of section 5.2, once
    k = u = x25519.BASE
    k, u = x25519.x25519(k, u), k
    assert k.hex() == "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
    # section 6.1: Diffie-Hellman
    a = _h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    b = _h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    pub_a, pub_b = x25519.public_key(a), x25519.public_key(b)
    assert pub_a.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert pub_b.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert x25519.x25519(a, pub_b).hex() == shared and x25519.x25519(b, pub_a).hex() == shared


def case_pairing_vector():
    p = V["pairing"]
    phone_pub, band_pub = x25519.public_key(_h(p["phone_secret"])), x25519.public_key(_h(p["band_secret"]))
    assert (phone_pub.hex(), band_pub.hex()) == (p["phone_pub"], p["band_pub"])
    shared = x25519.x25519(_h(p["phone_secret"]), band_pub)
    assert shared.hex() == p["shared"]
    key = pairing.band_key(shared, BAND_NONCE, PHONE_NONCE, phone_pub, band_pub)
    assert key.hex() == p["band_key"] and frames.pairing_code(key) == p["code"]
    f = [_h(x) for x in p["frames"]]
    assert [len(x) for x in f] == [18, 18, 18, 18]
    got = [
        pairing.encode_pub(frames.PAIR_PUB, 0, phone_pub),
        pairing.encode_pub(frames.PAIR_PUB, 1, phone_pub),
        pairing.encode_pub(frames.BAND_PUB, 0, band_pub),
        pairing.encode_pub(frames.BAND_PUB, 1, band_pub),
    ]
    assert got == f
    # the band's side: both halves in either order, then the phone's PairConfirm
    secret = _h(p["band_secret"])
    band = pairing.BandPairing(secret)
    assert not band.on_pub(f[1]) and band.on_pub(f[0])
    steps = 0
    while not band.work(40):
        steps += 1
    assert steps == 13, steps  # two ladders of 255 steps, 40 at a time
    assert list(band.frames()) == f[2:]
    confirm = next(v for v in V["special"] if v["type"] == "PairConfirm")
    assert band.finish(_h(confirm["hex"]), BAND_NONCE) == (key, PHONE_NONCE)
    _expect_error(band.on_pub, f[0], "a third PubPair", "Malformed")


def case_low_order_public_keys_are_refused():
    zero = bytes(32)
    band = pairing.BandPairing(bytes(range(1, 33)))
    band.on_pub(pairing.encode_pub(frames.PAIR_PUB, 0, zero))
    assert band.on_pub(pairing.encode_pub(frames.PAIR_PUB, 1, zero))

    def finish(n):
        while not band.work(n):
            pass

    _expect_error(finish, 600, "u = 0", "Malformed")
    assert not band.band_pub
    _expect_error(
        lambda s: pairing.band_key(s, BAND_NONCE, PHONE_NONCE, zero, zero), zero, "S = 0", "Malformed"
    )


def case_payloads_are_not_readable():
    """Two identical messages never look alike, and no field appears in clear."""
    import struct

    band = _session(frames.BAND)
    seen = []
    for _ in range(8):
        data = band.seal(frames.Press(7, frames.GESTURE_TAP, 3, 0, 0, 50))
        clear = struct.pack("<HBBHHB", 7, frames.GESTURE_TAP, 3, 0, 0, 50)
        assert data[5:14] != clear
        seen.append(data[5:14])
    assert len(set(seen)) == len(seen)
    for v in V["valid"]:
        if v["fields"]:
            data = _h(v["hex"])
            fmt = {
                "AuthOk": "<BBB",
                "Press": "<HBBHHB",
                "Felt": "<H",
                "Status": "<BBHH",
                "Play": "<BBBBH",
                "Ack": "<H",
                "SetTime": "<Ih",
                "SetConfig": "<BH",
                "Identify": "<B",
            }[v["type"]]
            assert data[5:-4] != struct.pack(fmt, *v["fields"]), v["name"]
