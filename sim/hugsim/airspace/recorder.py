"""The passive recorder: everything a sniffer in range would capture, in airspace time.

One entry (a dict) per thing on the air, with ``t_ms`` and ``kind``:

* ``adv``: a band starts (or changes) advertising: ``address``, ``addr_type``, ``adv`` and ``resp``
  (hex), ``interval_us``, ``connectable``. Between two entries for an address it repeats unchanged
  every interval; ``adv_stop`` when it stops.
* link traffic, each with ``central`` and ``address`` (the two addresses of the link): ``connect``,
  ``disconnect`` (``reason``), ``mtu``, ``conn_update``, ``write`` / ``write_cmd`` (central to band:
  ``handle``, ``value``), ``read`` and ``read_rsp`` (``handle``, ``value``), ``notify`` / ``indicate``.

Entries also carry ``node``, the band's identity address: ground truth for tests, which a sniffer does
not have; :meth:`Recorder.entries` leaves it out unless asked. The recorder keeps the newest
``limit`` entries (``dropped`` counts the rest) and, given a ``path``, also appends each entry to that
file as a JSON line.
"""

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from . import wire

DEFAULT_LIMIT = 50_000  # tens of MB at most; a test's day of hugs takes a few hundred


class Recorder:
    def __init__(
        self, now_ms: Callable[[], float], path: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> None:
        self._now_ms = now_ms
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)
        self.dropped = 0
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - closed in close()

    def _add(self, entry: dict[str, Any]) -> None:
        if len(self._entries) == self._entries.maxlen:
            self.dropped += 1
        self._entries.append(entry)
        if self._file is not None:
            self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self._file.flush()

    def advert(self, node: Any) -> None:
        """A band's advertising started, changed or stopped."""
        entry: dict[str, Any] = {"t_ms": self._now_ms(), "node": node.address, "address": node.air}
        if node.interval_us is None:
            entry["kind"] = "adv_stop"
        else:
            entry.update(
                kind="adv",
                addr_type=node.addr_type,
                adv=wire.hexb(node.adv),
                resp=wire.hexb(node.resp),
                interval_us=node.interval_us,
                connectable=node.connectable,
            )
        self._add(entry)

    def link(self, conn: Any, kind: str, **fields: Any) -> None:
        """Something on a link between a central and a band."""
        entry: dict[str, Any] = {
            "t_ms": self._now_ms(),
            "kind": kind,
            "node": conn.node.address,
            "central": conn.central.address,
            "address": conn.air,
        }
        for name, value in fields.items():
            entry[name] = wire.hexb(value) if isinstance(value, (bytes, bytearray, memoryview)) else value
        self._add(entry)

    def entries(self, since_ms: float = 0.0, truth: bool = False) -> list[dict[str, Any]]:
        """What was recorded at or after ``since_ms``; ``truth`` keeps each entry's ``node``."""
        out = []
        for e in self._entries:
            if e["t_ms"] >= since_ms:
                out.append(dict(e) if truth else {k: v for k, v in e.items() if k != "node"})
        return out

    def clear(self) -> None:
        self._entries.clear()
        self.dropped = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
