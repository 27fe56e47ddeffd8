"""Kivy is untyped: this stub makes its names explicit Any for the strict check (see typings/kivy/README)."""

from typing import Any

def __getattr__(name: str) -> Any: ...
