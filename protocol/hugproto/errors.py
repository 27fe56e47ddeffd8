"""Errors raised by hugproto. Decoders raise only these, never IndexError or struct.error."""


class ProtocolError(ValueError):
    """Base class of every error a hugproto decoder or encoder raises."""


class Incomplete(ProtocolError):
    """The bytes stop before the frame does (truncated or not yet all received)."""


class Malformed(ProtocolError):
    """The bytes can never be a valid frame: unknown version or kind, wrong length, bad field."""


class Unauthenticated(ProtocolError):
    """The frame's MAC does not verify under the expected key."""


class Replayed(ProtocolError):
    """The frame is authentic but its counter was already used."""
