"""``hugapp.core.api.CompanionApi`` in the window's process, over the window link to the hug service.

    async with await RemoteCompanion.connect(data_dir, on_change=bell) as api:
        Controller(api)

Reads come from the store (opened once the service is up, so it has migrated it) and from the state
the service pushes; actions are requests, one line each below, typed by the Protocol and encoded by
``api_wire`` from its table. ``on_change`` is called when the service reports a change or the link
drops or comes back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from hugapp.core import relaystore as rs
from hugapp.core.api import BandLive
from hugapp.core.bandlink import FoundBand
from hugapp.core.companion import circle_members
from hugapp.core.coowners import schedule_key
from hugapp.core.hugstore import HistoryEntry, HugStore
from hugapp.core.linking import LinkResult
from hugapp.core.schedule import Schedule
from hugapp.core.store import Store
from hugapp.window_link import STORE_FILE, WindowLinkError
from hugapp.window_link.api_wire import ACTIONS, OFFER_CANCEL, OFFER_WAIT, decode, encode, error_from_wire
from hugapp.window_link.client import LinkClient


class RemoteOffer:
    """A link code the service offers for this window."""

    def __init__(self, link: LinkClient, code: str, expires_at: float) -> None:
        self.link = link
        self.code = code
        self.expires_at = expires_at

    async def wait(self) -> LinkResult:
        return decode(await self.link.call(OFFER_WAIT, {"code": self.code}), LinkResult, "the link result")

    async def cancel(self) -> None:
        with contextlib.suppress(WindowLinkError):
            await self.link.call(OFFER_CANCEL, {"code": self.code})


class RemoteCompanion:
    """The service's Companion, seen from the window (see the module docstring)."""

    def __init__(
        self, data_dir: Path, *, on_change: Callable[[], None] = lambda: None, reconnect_timeout: float = 30.0
    ) -> None:
        self.data_dir = data_dir
        self.link = LinkClient(
            data_dir, error_from_wire, on_change=on_change, reconnect_timeout=reconnect_timeout
        )
        self._store: Store | None = None

    @classmethod
    async def connect(
        cls, data_dir: Path, *, on_change: Callable[[], None] = lambda: None, timeout: float = 30.0
    ) -> RemoteCompanion:
        """Connect to the service serving ``data_dir`` (waiting up to ``timeout`` for it to start)."""
        remote = cls(data_dir, on_change=on_change, reconnect_timeout=timeout)
        await remote.link.start(timeout)
        remote._store = Store(data_dir / STORE_FILE)
        return remote

    async def __aenter__(self) -> RemoteCompanion:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.link.close()
        if self._store is not None:
            self._store.close()

    @property
    def service_pid(self) -> int:
        return self.link.service_pid

    # -- reads ------------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise WindowLinkError("not connected to the hug service yet")
        return self._store

    def identity(self) -> rs.Identity:
        me = rs.identity(self.store)
        if me is None:
            raise WindowLinkError("the hug service has not set this phone up yet")
        return me

    def members(self) -> list[rs.Member]:
        return circle_members(self.store, self.identity().member_id)

    def history(self, limit: int = 200) -> list[HistoryEntry]:
        return HugStore(self.store).history(limit)

    def schedule(self, wearer: str | None = None) -> Schedule:
        return HugStore(self.store).schedule(schedule_key(self.store, self.identity().member_id, wearer))

    def _state(self) -> dict[str, Any]:
        state: Any = self.link.state
        return cast("dict[str, Any]", state) if isinstance(state, dict) else {}

    def band_live(self, band_id: str) -> BandLive:
        band: Any = cast("dict[str, Any]", self._state().get("bands") or {}).get(band_id)
        return BandLive(None, None) if band is None else decode(band, BandLive, "a band's live state")

    def online(self, link_id: str, member_id: str) -> bool | None:
        for entry in cast("list[list[Any]]", self._state().get("presence") or []):
            if entry[0] == link_id and entry[1] == member_id:
                return bool(entry[2])
        return None

    # -- actions: one line each ---------------------------------------------------------------------

    async def _act(self, op: str, progress: Callable[[Any], None] | None = None, **args: Any) -> Any:
        action = ACTIONS[op]

        def heard(data: Any) -> None:
            if progress is not None:
                progress(decode(data, action.progress, op))

        result = await self.link.call(op, {k: encode(v) for k, v in args.items()}, heard)
        return decode(result, action.returns, f"the answer to {op}")

    async def send_from_screen(self, gesture: int, value: int, squeeze_ms: int = 0) -> str:
        return await self._act("send_from_screen", gesture=gesture, value=value, squeeze_ms=squeeze_ms)

    async def scan(
        self, timeout: float, progress: Callable[[FoundBand], None] | None = None
    ) -> list[FoundBand]:
        return await self._act("scan", progress, timeout=timeout)

    async def pair_band(
        self, address: str, name: str | None = None, wearer: str | None = None, new_wearer: str | None = None
    ) -> FoundBand:
        return await self._act("pair_band", address=address, name=name, wearer=wearer, new_wearer=new_wearer)

    async def share_band(self, band_id: str, member_id: str) -> None:
        await self._act("share_band", band_id=band_id, member_id=member_id)

    async def forget_band(self, band_id: str) -> None:
        await self._act("forget_band", band_id=band_id)

    async def enrol_at_hub(self, code: str, band_id: str) -> str:
        return await self._act("enrol_at_hub", code=code, band_id=band_id)

    async def leave_hub(self, band_id: str) -> None:
        await self._act("leave_hub", band_id=band_id)

    async def test_buzz(self, band_id: str) -> None:
        await self._act("test_buzz", band_id=band_id)

    async def rename_band(self, band_id: str, name: str) -> None:
        await self._act("rename_band", band_id=band_id, name=name)

    async def offer_link(self) -> RemoteOffer:
        offer = cast("dict[str, Any]", await self.link.call("offer_link", {}))
        return RemoteOffer(self.link, str(offer["code"]), float(offer["expires_at"]))

    async def join_link(self, code: str) -> LinkResult:
        return await self._act("join_link", code=code)

    async def set_schedule(self, schedule: Schedule, wearer: str | None = None) -> None:
        await self._act("set_schedule", schedule=schedule, wearer=wearer)

    async def rename_me(self, name: str) -> None:
        await self._act("rename_me", name=name)

    async def set_signature(self, member_id: str, signature: int) -> None:
        await self._act("set_signature", member_id=member_id, signature=signature)
