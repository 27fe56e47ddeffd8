"""What a window uses of a running companion: :class:`CompanionApi`, written once.

:class:`hugapp.core.companion.Companion` implements it in its own process (the desktop
``hugbutton app``); ``hugapp.window_link.remote.RemoteCompanion`` implements it in the window's
process over the window link to the hug service (Android's layout), whose server dispatches the
actions (the ``async`` members) by name from this class. Adding a member: declare it here, implement
it on Companion, add its one-line forwarder to RemoteCompanion.

Reads are synchronous: the window reads the store (both processes open it) and the live state the
service pushes. Every change goes through an action, so the service's companion makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hugapp.core import relaystore as rs
from hugapp.core.bandlink import FoundBand, LinkState
from hugapp.core.hugstore import HistoryEntry
from hugapp.core.linking import LinkResult
from hugapp.core.schedule import Schedule
from hugapp.core.store import Store


@dataclass(frozen=True)
class BandLive:
    """What the band link knows beyond the store."""

    state: LinkState | None  # None: no link (not paired here, or the companion is not running it)
    battery: int | None
    via: str = ""  # the relay the link runs through now ("hub": the classroom hub); "" this device's radio


class Offer(Protocol):
    """A link code being offered (``linking.LinkOffer`` in the companion's process)."""

    @property
    def code(self) -> str: ...

    @property
    def expires_at(self) -> float: ...

    async def wait(self) -> LinkResult:
        """Until the other phone joined."""
        ...

    async def cancel(self) -> None: ...


class CompanionApi(Protocol):
    """A running companion, in this process or the hug service's."""

    # -- reads (synchronous, no side effects) ---------------------------------------------------

    @property
    def store(self) -> Store: ...

    def identity(self) -> rs.Identity: ...

    def members(self) -> list[rs.Member]: ...

    def history(self, limit: int = 200) -> list[HistoryEntry]: ...

    def schedule(self, wearer: str | None = None) -> Schedule:
        """The quiet hours of ``wearer``: yours (None), or those of a person without a phone whose
        band this companion owns or co-owns (``coowners.served_wearers``); StoreError for anyone else."""
        ...

    def band_live(self, band_id: str) -> BandLive: ...

    def online(self, link_id: str, member_id: str) -> bool | None: ...

    # -- actions (served over the window link by name) -------------------------------------------

    async def send_from_screen(self, gesture: int, value: int, squeeze_ms: int = 0) -> str: ...

    async def scan(
        self, timeout: float, progress: Callable[[FoundBand], None] | None = None
    ) -> list[FoundBand]: ...

    async def pair_band(
        self, address: str, name: str | None = None, wearer: str | None = None, new_wearer: str | None = None
    ) -> FoundBand:
        """Pair; returns the band (its id, and how many times it buzzed to confirm: 2..5, for the
        parent to check it was theirs). Whose band: ``wearer`` (a member id: yours by default, or
        someone without a phone) or ``new_wearer`` (the name of a new person without a phone)."""
        ...

    async def share_band(self, band_id: str, member_id: str) -> None:
        """Let another companion of the circle (the home gateway) co-own a band here."""
        ...

    async def forget_band(self, band_id: str) -> None: ...

    async def enrol_at_hub(self, code: str, band_id: str) -> str:
        """Bands → "At school": the classroom hub showing ``code`` serves this band too (it learns only
        which band to serve); this phone's own radio is still preferred. Returns the enrolment id."""
        ...

    async def leave_hub(self, band_id: str) -> None:
        """The classroom hub stops serving this band."""
        ...

    async def test_buzz(self, band_id: str) -> None: ...

    async def rename_band(self, band_id: str, name: str) -> None: ...

    async def offer_link(self) -> Offer: ...

    async def join_link(self, code: str) -> LinkResult: ...

    async def set_schedule(self, schedule: Schedule, wearer: str | None = None) -> None:
        """Store the quiet hours of ``wearer`` (as :meth:`schedule`); their band's co-owners get them.
        A person not served here is refused with a StoreError and nothing changes."""
        ...

    async def rename_me(self, name: str) -> None: ...

    async def set_signature(self, member_id: str, signature: int) -> None: ...
