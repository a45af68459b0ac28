"""The ranges numbers must lie in, checked one way everywhere: command-line options, configuration
keys and the Python API refuse a value outside its range with a message that names it and the range.
This module imports nothing of molvae."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Range"]


@dataclass(frozen=True)
class Range:
    """A finite integer or number within ``[low, high]`` (``low`` excluded when ``low_open``).

    >>> Range(int, 1).check(5, "n"), Range(float, 0, 1).parse("0.25", "x")
    (5, 0.25)
    >>> Range(int, 1).check(0, "n")
    Traceback (most recent call last):
    ...
    ValueError: n must be a whole number >= 1, got 0
    >>> Range(float, 0, low_open=True).parse("nan", "--spread")
    Traceback (most recent call last):
    ...
    ValueError: --spread must be a finite number > 0, got 'nan'
    """

    kind: type  # int or float
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def describe(self) -> str:
        """The accepted range in words, e.g. ``a whole number >= 1``."""
        words = "a whole number" if self.kind is int else "a finite number"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        return " ".join([words, " and ".join(bounds)]).strip()

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            return False
        number = float(value)
        if not math.isfinite(number) or (self.kind is int and not number.is_integer()):
            return False
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            return False
        return self.high is None or number <= self.high

    def refusal(self, name: str, given: Any) -> ValueError:
        """The error for a value outside the range: ``NAME must be <range>, got <value>``."""
        return ValueError(f"{name + ' ' if name else ''}must be {self.describe()}, got {given!r}")

    def check(self, value: Any, name: str) -> int | float:
        """``value`` as an int or float if it lies in the range, else a ValueError naming ``name``."""
        if not self.contains(value):
            raise self.refusal(name, value)
        return int(value) if self.kind is int else float(value)

    def parse(self, text: str, name: str = "") -> int | float:
        """A number written as text (``1e3`` is a whole number too), checked like :meth:`check`."""
        try:
            value = float(text)
        except ValueError:
            raise self.refusal(name, text) from None
        if not self.contains(value):
            raise self.refusal(name, text)
        return int(value) if self.kind is int else value
