"""A linking code cannot be brute-forced: the first wrong guess burns the offer, every later guess fails,
and the right code fails afterwards too (on the embedded broker and on Mosquitto). Extends
tests/app/core/test_relay_linking.py::test_a_wrong_code_burns_the_offer (one wrong guess) to a guessing run
by an attacker who knows the rendezvous half of the code."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from relaykit import Phone, TestBroker, make_broker, run

from hugapp.core import relaystore as rs
from hugapp.core.linking import (
    CODE_ALPHABET,
    LinkError,
    create_link_code,
    join_with_code,
    normalize_code,
)

GUESSES = 5


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> TestBroker:
    return make_broker(str(request.param), tmp_path)


def test_guessing_a_link_code_burns_it(broker: TestBroker, tmp_path: Path) -> None:
    async def main() -> None:
        async with broker:
            mum = Phone(tmp_path, "Mum Alice")
            attacker = Phone(tmp_path, "Eve Stranger")
            kid = Phone(tmp_path, "Kid Bobby")
            offer = await create_link_code(mum.store, mum.me, broker.url)
            code = normalize_code(offer.code)
            waiting = asyncio.ensure_future(offer.wait())
            outcomes: list[str] = []
            for _ in range(GUESSES):  # the rendezvous half is right; the secret half is guessed
                guess = code[:4] + "".join(secrets.choice(CODE_ALPHABET) for _ in range(4))
                if guess == code:
                    continue  # 1 in 923,521: not a guess worth counting
                try:
                    await join_with_code(guess, attacker.store, attacker.me, broker.url, timeout=1.5)
                    outcomes.append("linked")
                except LinkError as e:
                    outcomes.append(type(e).__name__)
            assert outcomes[0] == "CodeMismatch", outcomes  # the first guess is checked, and burns it
            assert all(o in ("CodeNotFound", "CodeBurnt") for o in outcomes[1:]), outcomes
            with pytest.raises(LinkError) as burnt:
                await waiting
            assert type(burnt.value).__name__ == "CodeBurnt"
            with pytest.raises(LinkError):  # the owner's friend with the right code is refused too
                await join_with_code(code, kid.store, kid.me, broker.url, timeout=1.5)
            for phone in (mum, attacker, kid):
                assert rs.links(phone.store) == []

    run(main(), timeout=60)
