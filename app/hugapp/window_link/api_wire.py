"""``hugapp.core.api.CompanionApi`` on the wire: the table of actions, derived from the Protocol once
(names, parameters with their types and defaults, the return type), the values and error classes to
and from JSON, and the service's :class:`CompanionHandler`, which dispatches by name from the table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import inspect
import types
from dataclasses import dataclass
from typing import Any, Union, cast, get_args, get_origin, get_type_hints

from hugapp.core import bandlink, linking
from hugapp.core.api import CompanionApi, Offer
from hugapp.core.hugs import HugError
from hugapp.core.relay import RelayError
from hugapp.core.schedule import Schedule
from hugapp.core.store import StoreError
from hugapp.window_link import WindowLinkError
from hugapp.window_link.server import Session

OFFER_WAIT = "offer_wait"  # {"code"}: until the other phone joined; the LinkResult
OFFER_CANCEL = "offer_cancel"  # {"code"}
_OFFERS = "offers"  # a session's open offers, by code


# ---------------------------------------------------------------------------------- the action table


@dataclass(frozen=True)
class Action:
    name: str
    params: dict[str, Any]  # name -> type, in order, without ``progress``
    required: frozenset[str]
    progress: Any  # the type a ``progress`` callback receives, or None when the action has none
    returns: Any


def _action(name: str, member: Any) -> Action:
    hints = get_type_hints(member)
    params: dict[str, Any] = {}
    required: set[str] = set()
    progress: Any = None
    for p in list(inspect.signature(member).parameters.values())[1:]:  # after self
        if p.name == "progress":
            callback = next(a for a in get_args(hints[p.name]) if a is not type(None))
            progress = get_args(callback)[0][0]
            continue
        params[p.name] = hints[p.name]
        if p.default is inspect.Parameter.empty:
            required.add(p.name)
    return Action(name, params, frozenset(required), progress, hints["return"])


ACTIONS: dict[str, Action] = {
    name: _action(name, member)
    for name, member in vars(CompanionApi).items()
    if not name.startswith("_") and inspect.iscoroutinefunction(member)
}


# ---------------------------------------------------------------------------------- values


def encode(value: Any) -> Any:
    """A value of the API as JSON."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return encode(value.value)
    if isinstance(value, Schedule):
        return value.to_settings()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [encode(v) for v in cast("list[Any]", value)]
    raise TypeError(f"no wire form for {type(value).__name__}")


def decode(value: Any, tp: Any, what: str) -> Any:
    """``value`` (JSON) as a ``tp``; ValueError with a sentence when it is not one."""
    origin = get_origin(tp)
    if tp is type(None) or tp is None:
        if value is None:
            return None
    elif origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            return decode(value, option, what)  # the API's unions are "X | None"
    elif origin is list:
        if isinstance(value, list):
            return [decode(v, get_args(tp)[0], what) for v in cast("list[Any]", value)]
    elif origin is tuple:  # tuple[X, ...]
        if isinstance(value, list):
            return tuple(decode(v, get_args(tp)[0], what) for v in cast("list[Any]", value))
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is bytes:
        if isinstance(value, str):
            return bytes.fromhex(value)
    elif tp is Schedule:
        return Schedule.from_settings(value)  # HugError with a sentence when malformed
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict):
        fields = get_type_hints(tp)
        v = cast("dict[str, Any]", value)
        try:
            return tp(**{f.name: decode(v[f.name], fields[f.name], what) for f in dataclasses.fields(tp)})
        except KeyError as exc:
            raise ValueError(f"{what} lacks {exc}") from None
    kind = cast("object", tp)
    name = str(getattr(kind, "__name__", kind))
    raise ValueError(f"{what} must be a {name}, not {type(value).__name__}")


def decode_args(action: Action, args: dict[str, Any]) -> dict[str, Any]:
    """A request's arguments checked against the action's parameters."""
    unknown = sorted(set(args) - set(action.params))
    if unknown:
        raise ValueError(f"{action.name} takes no {', '.join(unknown)}")
    missing = sorted(action.required - set(args))
    if missing:
        raise ValueError(f"{action.name} needs {', '.join(missing)}")
    return {k: decode(args[k], action.params[k], f"{action.name}'s {k}") for k in args}


# ---------------------------------------------------------------------------------- errors

# Errors an action may raise, rebuilt in the window with their class so it words them the same.
ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        bandlink.BandLinkError,
        bandlink.BandNotFound,
        bandlink.PairingWindowClosed,
        bandlink.PairingTaken,
        bandlink.ProtocolMismatch,
        bandlink.BandUnavailable,
        bandlink.HandshakeFailed,
        linking.LinkError,
        linking.CodeInvalid,
        linking.CodeExpired,
        linking.CodeNotFound,
        linking.CodeBurnt,
        RelayError,
        HugError,
        StoreError,
        WindowLinkError,
        ValueError,
        TimeoutError,
        ConnectionRefusedError,
        OSError,
    )
}


def error_type(exc: BaseException) -> str:
    return next((c.__name__ for c in type(exc).__mro__ if ERRORS.get(c.__name__) is c), "WindowLinkError")


def error_from_wire(kind: str, message: str) -> Exception:
    cls = ERRORS.get(kind, WindowLinkError)
    exc = cls.__new__(cls)  # the class without its __init__ (some build their own message)
    exc.args = (message,)
    return exc


# ---------------------------------------------------------------------------------- the service's side


class CompanionHandler:
    """Serves a CompanionApi (the service's Companion) to windows: ``hugapp.window_link.server.Handler``."""

    def __init__(self, api: CompanionApi) -> None:
        self.api = api

    def state(self) -> dict[str, Any]:
        """What is not in the store: link states and batteries, presence."""
        api = self.api
        return {
            "bands": {b.band_id: encode(api.band_live(b.band_id)) for b in api.store.bands()},
            "presence": [
                [m.link_id, m.member_id, online]
                for m in api.members()
                if (online := api.online(m.link_id, m.member_id)) is not None
            ],
        }

    def error_type(self, exc: BaseException) -> str:
        return error_type(exc)

    @staticmethod
    def _offers(session: Session) -> dict[str, Offer]:
        return cast("dict[str, Offer]", session.values.setdefault(_OFFERS, {}))

    async def answer(self, session: Session, request_id: Any, op: str, args: dict[str, Any]) -> Any:
        offers = self._offers(session)
        if op in (OFFER_WAIT, OFFER_CANCEL):
            code = decode(args.get("code"), str, f"{op}'s code")
            offer = offers.pop(code, None) if op == OFFER_CANCEL else offers.get(code)
            if offer is None:
                if op == OFFER_CANCEL:
                    return None
                raise WindowLinkError("that code is no longer offered")
            if op == OFFER_CANCEL:
                return await offer.cancel()
            try:
                return encode(await offer.wait())
            finally:
                offers.pop(code, None)
        action = ACTIONS.get(op)
        if action is None:
            raise WindowLinkError(f"unknown request {op!r}")
        kwargs = decode_args(action, args)
        if action.progress is not None:

            def progress(item: Any) -> None:
                session.progress(request_id, encode(item))

            kwargs["progress"] = progress
        result = await getattr(self.api, op)(**kwargs)
        if action.returns is Offer:
            offers[result.code] = result
            return {"code": result.code, "expires_at": result.expires_at}
        return encode(result)

    async def closed(self, session: Session) -> None:
        for offer in self._offers(session).values():
            with contextlib.suppress(Exception):
                await offer.cancel()
