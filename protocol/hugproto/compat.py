"""The one place that bridges MicroPython and CPython for the shared protocol files."""

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython

    def const(expr: int) -> int:
        return expr


__all__ = ["const"]
