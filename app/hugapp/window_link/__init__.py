"""The window link: the app's window talking to the hug service that owns the one Companion.

On Android the foreground service (``hugapp.service``) owns the Companion (band links, relay,
router); the window is a client in another process. Layers, each its own module:

- :mod:`.server` and :mod:`.client`: the transport only. JSON lines over a loopback TCP socket; the
  server writes :data:`LINK_FILE` (host, port, a random token; mode 0600) into the data folder and a
  client's first line must carry the token. Requests ``{"id", "op", "args"}`` are answered
  ``{"id", "ok", "result" | "error": {"type", "message"}}``; a request may send
  ``{"event": "progress", "id", "data"}`` before its answer; the server pushes
  ``{"event": "changed", "state"}`` when what it serves changes (and ``"hello"`` first).
- :mod:`.api_wire`: ``hugapp.core.api.CompanionApi`` on the wire: the server's dispatch table derived
  from the Protocol, argument checking, values and error classes to and from JSON.
- :mod:`.remote`: :class:`~.remote.RemoteCompanion`, the CompanionApi in the window's process.
"""

LINK_FILE = "window_link.json"
STORE_FILE = "companion.sqlite3"  # the store both processes open, in the same data folder
HELLO_TIMEOUT_S = 5.0
MAX_LINE = 1 << 20  # a request or reply longer than this closes the connection


class WindowLinkError(Exception):
    """The service could not be reached, or it refused a request."""
