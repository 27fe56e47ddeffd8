"""Sealed envelopes without a broker: round trip, and every way of tampering is refused."""

from __future__ import annotations

import os

import pytest

from hugapp.core.envelope import (
    PAD_TO,
    Forged,
    Garbled,
    inbox_topic,
    open_envelope,
    presence_topic,
    seal,
)

KEY = bytes(range(32))
ALICE, BOBBY = "a" * 32, "b" * 32
TOPIC = inbox_topic(KEY, BOBBY, "c" * 32)


def test_round_trip_and_topics_reveal_nothing() -> None:
    mid, data = seal(KEY, TOPIC, ALICE, "hug", {"gesture": "tap", "taps": 3}, 1234.5)
    msg = open_envelope(KEY, TOPIC, [BOBBY, ALICE], data)
    assert (msg.msg_id, msg.sender, msg.sent_at, msg.type, msg.payload) == (
        mid,
        ALICE,
        1234.5,
        "hug",
        {"gesture": "tap", "taps": 3},
    )
    assert data[0] == 1
    assert (len(data) - 1 - 12 - 16) % PAD_TO == 0
    assert TOPIC.startswith("hug/v1/in/" + "c" * 32 + "/")
    assert BOBBY not in TOPIC
    assert inbox_topic(os.urandom(32), BOBBY, "c" * 32) != TOPIC
    pkey = os.urandom(32)
    pr = presence_topic(pkey)  # named by the presence key only circles know: no mailbox, no id
    assert pr.startswith("hug/v1/pr/")
    assert len(pr.rsplit("/", 1)[1]) == 64
    assert pkey.hex() not in pr
    assert presence_topic(pkey) == pr != presence_topic(os.urandom(32))


def test_tampering_is_refused() -> None:
    _, data = seal(KEY, TOPIC, ALICE, "hug", {"gesture": "tap"}, 1.0)
    other_topic = inbox_topic(KEY, ALICE, "d" * 32)
    with pytest.raises(Forged):
        open_envelope(KEY, other_topic, [ALICE], data)  # moved to another topic
    with pytest.raises(Forged):
        open_envelope(KEY, TOPIC, [BOBBY], data)  # claimed by another sender
    with pytest.raises(Forged):
        open_envelope(os.urandom(32), TOPIC, [ALICE], data)  # wrong key
    for i in range(1, len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0x80
        with pytest.raises(Forged):
            open_envelope(KEY, TOPIC, [ALICE], bytes(flipped))
    with pytest.raises(Garbled):
        open_envelope(KEY, TOPIC, [ALICE], data[:28])
    with pytest.raises(Garbled):
        open_envelope(KEY, TOPIC, [ALICE], b"\x02" + data[1:])
