"""Link: offering a code (and QR) to another phone, or typing one in."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from hugapp.core.api import Offer
from hugapp.ui.shared import Shared


@dataclass(frozen=True)
class LinkView:
    code: str
    expires_in: int  # seconds
    message: str


class LinkActions:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.offer: Offer | None = None
        self.message = ""

    def offer_link(self) -> None:
        s = self.shared

        async def run() -> None:
            if self.offer is not None:
                await self.offer.cancel()
            self.offer = None
            self.message = "Making a code…"
            s.changed()
            offer = await s.api.offer_link()
            self.offer = offer
            self.message = "Type this code on the other phone (valid 3 minutes, once)"
            s.changed()
            try:
                result = await offer.wait()
            finally:
                if self.offer is offer:
                    self.offer = None
            self.message = f"Linked with {result.member.name}"
            s.notice = self.message

        s.spawn(run(), "offer link")

    def join_link(self, code: str) -> None:
        s = self.shared

        async def run() -> None:
            self.message = "Joining…"
            s.changed()
            try:
                result = await s.api.join_link(code)
            except BaseException:
                self.message = ""
                raise
            self.message = f"Joined {result.member.name}'s circle"
            s.notice = self.message

        s.spawn(run(), "join link")

    async def close(self) -> None:
        if self.offer is not None:
            with contextlib.suppress(Exception):
                await self.offer.cancel()

    def view(self, now: float) -> LinkView:
        offer = self.offer
        if offer is None:
            return LinkView("", 0, self.message)
        return LinkView(offer.code, max(0, int(offer.expires_at - now)), self.message)
