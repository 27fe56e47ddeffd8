"""Tiny stand-in firmwares for the band runner's own tests (real MicroPython APIs only)."""
