"""The child's device mode: the heart and the faces only, left with the parent's PIN."""

from __future__ import annotations

import hashlib
import secrets

from hugapp.core import uisettings
from hugapp.ui.shared import Shared

_PIN_ROUNDS = 100_000


def hash_pin(pin: str, salt: bytes) -> str:
    return hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, _PIN_ROUNDS).hex()


class ChildActions:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def enter_child_mode(self, pin: str) -> bool:
        """Switch to the child's device mode behind a parent PIN (4-8 digits); False with an error."""
        s = self.shared
        if not (pin.isdigit() and 4 <= len(pin) <= 8):
            s.fail("The parent PIN must be 4 to 8 digits")
            return False
        salt = secrets.token_bytes(16)
        settings = uisettings.load(s.api.store)
        settings.update(child_mode=True, pin_salt=salt.hex(), pin_hash=hash_pin(pin, salt))
        uisettings.save(s.api.store, settings)
        s.error = ""
        s.changed()
        return True

    def leave_child_mode(self, pin: str) -> bool:
        s = self.shared
        settings = uisettings.load(s.api.store)
        salt = bytes.fromhex(str(settings.get("pin_salt", "")))
        if not secrets.compare_digest(hash_pin(pin, salt), str(settings.get("pin_hash", ""))):
            s.fail("That PIN isn't right")
            return False
        settings["child_mode"] = False
        uisettings.save(s.api.store, settings)
        s.error = ""
        s.changed()
        return True
