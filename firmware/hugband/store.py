"""Blob storage for the band's small persistent files (outbox, key, settings).

Each store holds one byte string. ``FileBlob`` keeps it in a file on the band's flash filesystem and
replaces it atomically (write a temp file, then rename over the old one), so a power cut leaves either
the old or the new contents. ``MemBlob`` is the in-memory stand-in for tests and the scripted day.
Both offer ``read() -> bytes or None``, ``write(data)`` and ``erase()``.
"""

import os


class FileBlob:
    def __init__(self, path: str) -> None:
        self.path = path

    def read(self):
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, data) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.rename(tmp, self.path)
        except OSError:  # filesystems whose rename will not replace (FAT): remove, then rename
            self._remove(self.path)
            os.rename(tmp, self.path)

    def erase(self) -> None:
        self._remove(self.path)

    @staticmethod
    def _remove(path: str) -> None:
        try:
            os.remove(path)
        except OSError:
            pass


class MemBlob:
    """In-memory blob; ``writes`` counts writes (flash wear in tests), ``fail`` makes writes raise."""

    def __init__(self, data=None) -> None:
        self.data = None if data is None else bytes(data)
        self.writes = 0
        self.fail = False

    def read(self):
        return self.data

    def write(self, data) -> None:
        if self.fail:
            raise OSError(28)  # ENOSPC
        self.data = bytes(data)
        self.writes += 1

    def erase(self) -> None:
        self.data = None
