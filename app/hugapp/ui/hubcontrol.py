"""What the classroom hub's own screen shows and does, without Kivy (the screen: ``hubscreen``).

The hub knows, per band, an enrolment id and two keys, nothing of the family: so the screen shows
the hub's name, its counts, the code a parent types to enrol a band, and enrolment ids. It runs over
a :class:`Hub` serving in the same process; actions start background tasks and return at once, and
``on_update`` is called whenever anything may have changed. A snapshot only reads. On a phone in hub
mode (``app_data`` given) the screen can also make the phone a family phone again (``phonemode``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hugapp.core.hub import Enrolment, Hub, offer_enrolment
from hugapp.core.linking import CODE_TTL_S, HUB, CodeOffer
from hugapp.hubwords import broker_words, error_words, hub_title, status_counts, stopped_words
from hugapp.ui.actions import Actions
from hugapp.ui.phonemode import FAMILY_MODE, set_mode
from hugapp.ui.words import ago

log = logging.getLogger("hugapp.ui.hub")


@dataclass(frozen=True)
class EnrolledRow:
    enrolment_id: str
    added: str  # "added 5 min ago"


@dataclass(frozen=True)
class HubSnapshot:
    title: str  # "Class 2 hub"
    name: str
    running: bool
    online: bool
    broker: str  # "broker online"
    counts: tuple[str, ...]  # "1 band(s) enrolled", ...
    bands: tuple[EnrolledRow, ...]
    code: str  # "K7PM-4Q2X" while a code is offered
    expires_in: int  # seconds
    message: str  # about the enrolment under way
    error: str
    notice: str
    phone_hub: bool  # the app's hub mode: it can be a family phone again


class HubControl(Actions):
    """Actions (``Actions``, errors in the operator's words) and state of the hub's screen over one
    running :class:`Hub`."""

    def __init__(
        self,
        hub: Hub,
        broker_url: str,
        on_update: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        code_ttl: float = CODE_TTL_S,
        app_data: Path | None = None,
    ) -> None:
        self.broker = ", ".join(f"{a.host}:{a.port}" for a in hub.brokers)  # no credentials
        super().__init__(on_update, lambda exc: error_words(exc, self.broker))
        self.hub = hub
        self.app_data = app_data  # the app's data folder when this is a phone's hub mode
        self.broker_url = broker_url
        self.clock = clock
        self.code_ttl = code_ttl  # how long a code offered from now on lives
        self.offer: CodeOffer[Enrolment] | None = None
        self.message = ""
        self.serving: asyncio.Future[None] | None = None
        self._enrolling: asyncio.Task[Any] | None = None

    def watch(self, serving: asyncio.Future[None]) -> None:
        """The hub's own task: if it ends by itself (no radio, say), the screen says why."""
        self.serving = serving

        def ended(f: asyncio.Future[None]) -> None:
            exc = None if f.cancelled() else f.exception()
            if exc is not None:
                log.warning("the hub stopped: %r", exc)
                self.error = stopped_words(exc)
            self.changed()

        serving.add_done_callback(ended)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def dismiss(self) -> None:
        self.error = ""
        self.notice = ""
        self.changed()

    # ---- actions

    def rename(self, text: str) -> bool:
        """What parents are told the hub is called (``hub_name``'s rule: the store checks it)."""
        try:
            self.hub.store.set_name(text)
        except ValueError as exc:
            self.error = error_words(exc, self.broker)
            self.changed()
            return False
        self.error = ""
        self.notice = "Name saved: bands enrolled from now on are told it"
        self.changed()
        return True

    def enrol(self) -> None:
        """Offer a code (and its QR); the parent who types it enrols one band."""
        self.cancel_enrol()

        async def run() -> None:
            me = asyncio.current_task()  # the spawned task: `_enrolling` until cancelled or replaced
            self.message, self.error, self.notice = "Making a code…", "", ""
            self.changed()
            hub = self.hub
            offer: CodeOffer[Enrolment] | None = None
            try:
                offer = await offer_enrolment(
                    hub.store, self.broker_url, ttl=self.code_ttl, tls_context=hub.tls_context
                )
                self.offer = offer
                self.message = f"In the parent's app: {HUB.where}, type this code or scan it"
                self.changed()
                enrolment = await offer.wait()
            finally:
                if self._enrolling is me:
                    self.offer, self.message = None, ""
                if offer is not None:
                    await offer.cancel()  # stops listening (nothing to do if it ended)
            self.notice = "Band enrolled"
            log.info("band enrolled on the hub's screen (%s)", enrolment.enrolment_id)

        self._enrolling = self.spawn(run(), "enrol a band")

    def cancel_enrol(self) -> None:
        if self._enrolling is not None:
            self._enrolling.cancel()
            self._enrolling = None
        self.offer, self.message = None, ""
        self.changed()

    def remove(self, enrolment_id: str) -> None:
        """Stop serving a band (its parent can enrol it again with a new code)."""
        if self.hub.store.remove(enrolment_id):
            self.notice = f"Band {enrolment_id} removed: this hub no longer serves it"
        else:
            self.error = f"No band {enrolment_id} is enrolled here"
        self.changed()

    def use_as_family_phone(self) -> None:
        """From the app's next start, this phone is a family phone again (the hub serves until then;
        its enrolments stay in its own folder, for when the phone is a hub again)."""
        if self.app_data is None:
            return
        try:
            set_mode(self.app_data, FAMILY_MODE)
        except OSError as exc:
            self.error = f"Could not switch this phone back ({exc.strerror or exc})"
        else:
            self.error = ""
            self.notice = "A family phone from the next start: close Hug Button and open it again"
        self.changed()

    # ---- what the screen shows

    def snapshot(self) -> HubSnapshot:
        """Everything the screen shows, read now (no side effects)."""
        now = self.clock()
        status = self.hub.status()
        running = self.serving is None or not self.serving.done()
        online = running and bool(status["online"])
        name = self.hub.store.name
        offer = self.offer
        return HubSnapshot(
            title=hub_title(name),
            name=name,
            running=running,
            online=online,
            broker=broker_words(online) if running else "the hub is not running",
            counts=tuple(status_counts(status)),
            bands=tuple(
                EnrolledRow(e.enrolment_id, f"added {ago(now, e.added_at)}")
                for e in self.hub.store.enrolments()
            ),
            code=offer.code if offer is not None else "",
            expires_in=max(0, int(offer.expires_at - now)) if offer is not None else 0,
            message=self.message,
            error=self.error,
            notice=self.notice,
            phone_hub=self.app_data is not None,
        )
