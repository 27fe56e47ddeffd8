"""Regenerate frames.json and adv.json (the golden vectors) from hugproto.

Run only when the wire format changes on purpose, then review the diff:
    .venv/bin/python tests/vectors/generate.py
The committed vectors freeze the format; tests/test_vectors.py also recomputes every MAC
with CPython's own hmac module, so the vectors do not merely agree with themselves.
"""

import json
from pathlib import Path

from hugproto import adv, frames, pairing, patterns, x25519

BAND_KEY = bytes.fromhex("8f3a61c2d94e07b5a1e63c2f90d84b17")
BAND_NONCE = bytes.fromhex("b1a2c3d4e5f60718")
PHONE_NONCE = bytes.fromhex("0badcafe12345678")
NEW_KEY = bytes.fromhex("5c1e9a0b7d3f2468ace013579bdf0246")
# RFC 7748 section 6.1's key pair for the phone (Alice) and the band (Bob)
PHONE_SECRET = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
BAND_SECRET = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")

# (name, direction that sends it, counter, message)
VALID = [
    ("auth_ok", "band", 1, frames.AuthOk(frames.FLAG_PAIRED, 87, 2)),
    ("press_tap_1", "band", 2, frames.Press(1, frames.GESTURE_TAP, 1, 0, 0, 87)),
    ("press_tap_5", "band", 3, frames.Press(2, frames.GESTURE_TAP, 5, 0, 12, 86)),
    ("press_squeeze", "band", 4, frames.Press(3, frames.GESTURE_SQUEEZE, 200, 2350, 3600, 85)),
    ("press_seq_wrap", "band", 5, frames.Press(0xFFFF, frames.GESTURE_TAP, 2, 0, 65535, 0)),
    ("felt", "band", 6, frames.Felt(0x1234)),
    ("status", "band", 7, frames.Status(15, frames.FLAG_PAIRED | frames.FLAG_LOW_BATTERY, 3, 41)),
    ("play_hug", "phone", 1, frames.Play(patterns.HUG, 1, 255, 1, 1)),
    ("play_big_hug", "phone", 2, frames.Play(patterns.BIG_HUG, 2, 128, 1, 2)),
    ("play_hug_back_taps", "phone", 3, frames.Play(patterns.HUG_BACK, 3, 200, 5, 65535)),
    ("play_felt_tick", "phone", 4, frames.Play(patterns.FELT_TICK, 0, 160, 1, 7)),
    ("ack", "phone", 5, frames.Ack(3)),
    ("set_time", "phone", 6, frames.SetTime(848_000_000, 60)),
    ("set_config", "phone", 7, frames.SetConfig(frames.CONFIG_MOTOR_MAX, 200)),
    ("identify", "phone", 8, frames.Identify(5)),
    ("unpair", "phone", 9, frames.Unpair()),
    ("counter_high", "phone", 0xFFFFFFFF, frames.Ack(0)),
]


def session(role: int) -> frames.Session:
    return frames.Session(BAND_KEY, BAND_NONCE, PHONE_NONCE, role)


def sealed(direction: str, counter: int, msg: frames.Message) -> bytes:
    s = session(frames.BAND if direction == "band" else frames.PHONE)
    s.tx_counter = counter - 1
    return s.seal(msg)


def flip(data: bytes, bit: int) -> str:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return out.hex()


def build() -> dict[str, object]:
    valid: list[dict[str, object]] = []
    invalid: list[dict[str, object]] = []
    for name, direction, counter, msg in VALID:
        valid.append(
            {
                "name": name,
                "type": type(msg).__name__,
                "from": direction,
                "counter": counter,
                "fields": list(msg.fields()),
                "hex": sealed(direction, counter, msg).hex(),
            }
        )
    state = frames.encode_state(BAND_KEY, BAND_NONCE, frames.FLAG_PAIRED, 87, 1)
    state_unpaired = frames.encode_state(frames.UNPAIRED_KEY, BAND_NONCE, frames.FLAG_PAIRING_OPEN, 100, 1)
    auth = frames.encode_auth(BAND_KEY, BAND_NONCE, PHONE_NONCE)
    phone_pub = x25519.public_key(PHONE_SECRET)
    band_pub = x25519.public_key(BAND_SECRET)
    shared = x25519.x25519(PHONE_SECRET, band_pub)
    paired_key = pairing.band_key(shared, BAND_NONCE, PHONE_NONCE, phone_pub, band_pub)
    confirm = pairing.encode_confirm(paired_key, BAND_NONCE, PHONE_NONCE)
    pub_frames = [
        pairing.encode_pub(frames.PAIR_PUB, 0, phone_pub),
        pairing.encode_pub(frames.PAIR_PUB, 1, phone_pub),
        pairing.encode_pub(frames.BAND_PUB, 0, band_pub),
        pairing.encode_pub(frames.BAND_PUB, 1, band_pub),
    ]
    special = [
        {
            "name": "state",
            "type": "State",
            "key": BAND_KEY.hex(),
            "fields": [BAND_NONCE.hex(), 1, 87, 1],
            "hex": state.hex(),
        },
        {
            "name": "state_unpaired",
            "type": "State",
            "key": frames.UNPAIRED_KEY.hex(),
            "fields": [BAND_NONCE.hex(), 2, 100, 1],
            "hex": state_unpaired.hex(),
        },
        {
            "name": "auth",
            "type": "Auth",
            "key": BAND_KEY.hex(),
            "fields": [PHONE_NONCE.hex()],
            "hex": auth.hex(),
        },
        {
            "name": "pair_confirm",
            "type": "PairConfirm",
            "key": paired_key.hex(),
            "fields": [PHONE_NONCE.hex()],
            "hex": confirm.hex(),
        },
    ]
    pairing_vector = {
        "phone_secret": PHONE_SECRET.hex(),
        "band_secret": BAND_SECRET.hex(),
        "phone_pub": phone_pub.hex(),
        "band_pub": band_pub.hex(),
        "shared": shared.hex(),
        "band_key": paired_key.hex(),
        "code": frames.pairing_code(paired_key),
        "frames": [f.hex() for f in pub_frames],
    }
    press = bytes.fromhex(str(valid[1]["hex"]))
    play = bytes.fromhex(str(valid[7]["hex"]))
    ack = bytes.fromhex(str(valid[11]["hex"]))
    other = frames.Session(bytes(range(16)), BAND_NONCE, PHONE_NONCE, frames.BAND)
    other.tx_counter = 1
    old_nonce = frames.Session(BAND_KEY, b"\x00" * 8, PHONE_NONCE, frames.PHONE)
    invalid += [
        {"name": "empty", "to": "phone", "hex": "", "error": "Incomplete"},
        {"name": "truncated_press", "to": "phone", "hex": press[:-1].hex(), "error": "Incomplete"},
        {"name": "header_only", "to": "band", "hex": play[:1].hex(), "error": "Incomplete"},
        {"name": "press_extra_byte", "to": "phone", "hex": (press + b"\x00").hex(), "error": "Malformed"},
        {"name": "too_long", "to": "band", "hex": "32" + "00" * 20, "error": "Malformed"},
        {"name": "version_3", "to": "band", "hex": flip(play, 5), "error": "Malformed"},
        {
            "name": "version_1",
            "to": "band",
            "hex": bytes((0x20 | (play[0] & 0x1F),)).hex() + play[1:].hex(),
            "error": "Malformed",
        },
        {
            "name": "version_0",
            "to": "band",
            "hex": bytes((play[0] & 0x1F,)).hex() + play[1:].hex(),
            "error": "Malformed",
        },
        {"name": "unknown_kind", "to": "band", "hex": "5f" + play[1:].hex(), "error": "Malformed"},
        {"name": "wrong_direction", "to": "band", "hex": press.hex(), "error": "Malformed"},
        {"name": "state_to_session", "to": "phone", "hex": state.hex(), "error": "Malformed"},
        {
            "name": "forged_mac",
            "to": "band",
            "hex": play[:-1].hex() + "%02x" % (play[-1] ^ 0x80),
            "error": "Unauthenticated",
        },
        {"name": "forged_field", "to": "band", "hex": flip(play, 8 * 5 + 1), "error": "Unauthenticated"},
        {
            "name": "other_key",
            "to": "phone",
            "hex": other.seal(frames.Felt(1)).hex(),
            "error": "Unauthenticated",
        },
        {
            "name": "old_connection",
            "to": "band",
            "hex": old_nonce.seal(frames.Play(patterns.HUG, 0, 255, 1, 1)).hex(),
            "error": "Unauthenticated",
        },
        {"name": "replayed_ack", "to": "band", "hex": ack.hex(), "rx_counter": 5, "error": "Replayed"},
        {"name": "replayed_older", "to": "band", "hex": play.hex(), "rx_counter": 4, "error": "Replayed"},
        {
            "name": "auth_wrong_key",
            "to": "auth",
            "hex": frames.encode_auth(NEW_KEY, BAND_NONCE, PHONE_NONCE).hex(),
            "error": "Unauthenticated",
        },
        {
            "name": "auth_old_nonce",
            "to": "auth",
            "hex": frames.encode_auth(BAND_KEY, b"\x01" * 8, PHONE_NONCE).hex(),
            "error": "Unauthenticated",
        },
        {
            "name": "pair_confirm_old_nonce",
            "to": "pair_confirm",
            "hex": pairing.encode_confirm(paired_key, b"\x01" * 8, PHONE_NONCE).hex(),
            "error": "Unauthenticated",
        },
        {
            "name": "pair_confirm_wrong_key",
            "to": "pair_confirm",
            "hex": pairing.encode_confirm(NEW_KEY, BAND_NONCE, PHONE_NONCE).hex(),
            "error": "Unauthenticated",
        },
        {
            "name": "pair_confirm_truncated",
            "to": "pair_confirm",
            "hex": confirm[:-1].hex(),
            "error": "Incomplete",
        },
        {
            "name": "pair_pub_half_2",
            "to": "pair_pub",
            "hex": "5102" + phone_pub[:16].hex(),
            "error": "Malformed",
        },
        {
            "name": "pair_pub_truncated",
            "to": "pair_pub",
            "hex": pub_frames[0][:-1].hex(),
            "error": "Incomplete",
        },
        {
            "name": "pair_pub_v1",
            "to": "pair_pub",
            "hex": "31" + pub_frames[0][1:].hex(),
            "error": "Malformed",
        },
        {"name": "state_forged", "to": "state", "hex": flip(state, 8 * 10), "error": "Unauthenticated"},
    ]
    # Authentic frames whose fields are out of range: sealed by hand, rejected as Malformed.
    for name, kind, fmt_fields, to in (
        ("play_unknown_pattern", frames.PLAY, (99, 0, 255, 1, 1), "band"),
        ("play_repeat_zero", frames.PLAY, (1, 0, 255, 0, 1), "band"),
        ("press_six_taps", frames.PRESS, (9, 1, 6, 0, 0, 50), "phone"),
        ("set_config_unknown_key", frames.SET_CONFIG, (77, 1), "band"),
    ):
        invalid.append(
            {"name": name, "to": to, "hex": _seal_raw(kind, fmt_fields, to).hex(), "error": "Malformed"}
        )
    steps = bytearray(patterns.BUFFER_SIZE)
    rendered: list[dict[str, object]] = []
    for pattern, signature, intensity, repeat in (
        (1, 0, 255, 1),
        (2, 1, 128, 1),
        (2, 1, 255, 1),
        (3, 3, 200, 3),
        (4, 0, 30, 1),
        (5, 6, 255, 5),
    ):
        n = patterns.render(pattern, signature, intensity, repeat, steps)
        rendered.append({"args": [pattern, signature, intensity, repeat], "steps": steps[: 2 * n].hex()})
    return {
        "about": "Hug Button golden vectors; regenerate with tests/vectors/generate.py only on purpose.",
        "band_key": BAND_KEY.hex(),
        "band_nonce": BAND_NONCE.hex(),
        "phone_nonce": PHONE_NONCE.hex(),
        "valid": valid,
        "special": special,
        "invalid": invalid,
        "pairing": pairing_vector,
        "patterns": rendered,
    }


def _seal_raw(kind: int, values: tuple[int, ...], to: str) -> bytes:
    import hmac
    import struct

    fmt = {frames.PLAY: "<BBBBH", frames.PRESS: "<HBBHHB", frames.SET_CONFIG: "<BH"}[kind]
    label = b"hug p2b" if to == "band" else b"hug b2p"
    enc_key = hmac.new(BAND_KEY, label + b" enc" + BAND_NONCE + PHONE_NONCE, "sha256").digest()
    mac_key = hmac.new(BAND_KEY, label + b" mac" + BAND_NONCE + PHONE_NONCE, "sha256").digest()
    head = bytes((0x40 | kind,)) + struct.pack("<I", 1)
    stream = hmac.new(enc_key, head, "sha256").digest()
    plain = struct.pack(fmt, *values)
    body = head + bytes(p ^ k for p, k in zip(plain, stream, strict=False))
    return body + hmac.new(mac_key, body, "sha256").digest()[:4]


ADV_ADDRESSES = ("3a:17:c0:55:02:9e", "01:02:03:04:05:06", "3f:ff:ff:ff:ff:fe")


def build_adv() -> dict[str, object]:
    """Advertising: the identity key from the band key, a token per address, roll and waiting bit,
    whole payloads."""
    import hmac

    ident = adv.identity_key(BAND_KEY)
    assert ident == hmac.new(BAND_KEY, b"hug adv id", "sha256").digest()[:16]
    cases: list[dict[str, object]] = []
    for i, address in enumerate(ADV_ADDRESSES):
        raw = bytes.fromhex(address.replace(":", ""))
        roll, waiting = ((0, 0), (17, 1), (63, 0))[i]
        token = hmac.new(ident, raw + bytes((roll, waiting)), "sha256").digest()[: adv.TOKEN_LEN]
        state = (frames.FLAG_PAIRED, frames.FLAG_PAIRED | frames.FLAG_PAIRING_OPEN, 0)[i]
        cases.append(
            {
                "address": address,
                "roll": roll,
                "waiting": waiting,
                "state": state,
                "token": token.hex(),
                "hex": adv.encode_advertising(state, token, roll).hex(),
            }
        )
    return {"band_key": BAND_KEY.hex(), "identity_key": ident.hex(), "adverts": cases}


if __name__ == "__main__":
    out = Path(__file__).with_name("frames.json")
    out.write_text(json.dumps(build(), indent=1) + "\n")
    print("wrote", out)
    out = Path(__file__).with_name("adv.json")
    out.write_text(json.dumps(build_adv(), indent=1) + "\n")
    print("wrote", out)
