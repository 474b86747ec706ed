"""Strict readers for script specs given as plain dicts (scenario files, control endpoint, header).

Every spec object (chunk plan, fault, response script) is loaded through :class:`SpecReader`, so a
typo in a scenario file fails loudly with a ``ValueError`` that names the key, where it was and what
was expected, instead of being ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class SpecReader:
    """Typed access to one spec dict; :meth:`finish` rejects keys nobody asked for.

    >>> reader = SpecReader({"size": 3}, "chunk plan", known=("kind", "size"))
    >>> reader.integer("size", 1, minimum=1)
    3
    """

    def __init__(self, data: object, what: str, *, known: Iterable[str]) -> None:
        if not isinstance(data, Mapping):
            raise ValueError(f"{what} must be an object (a dict), got {type(data).__name__}")
        self.data: Mapping[Any, Any] = data
        self.what = what
        self.known = tuple(known)
        for key in data:
            if key not in self.known:
                raise ValueError(
                    f"unknown {what} key {key!r} (known keys: {', '.join(self.known)})"
                )

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def _bad(self, key: str, expected: str) -> ValueError:
        return ValueError(f"{self.what} key {key!r} must be {expected}, got {self.data[key]!r}")

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int:
        if not self.has(key):
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer")
        if minimum is not None and value < minimum:
            raise self._bad(key, f"an integer >= {minimum}")
        return value

    def number(self, key: str, default: float, *, maximum: float | None = None) -> float:
        """A non-negative finite number of seconds (or similar)."""
        if not self.has(key):
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, "a number")
        number = float(value)
        if not 0.0 <= number < float("inf"):
            raise self._bad(key, "a finite number >= 0")
        if maximum is not None and number > maximum:
            raise self._bad(key, f"a number <= {maximum:g}")
        return number

    def flag(self, key: str, default: bool) -> bool:
        if not self.has(key):
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def text(self, key: str, default: str) -> str:
        if not self.has(key):
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        options = tuple(choices)
        value = self.text(key, default)
        if value not in options:
            raise self._bad(key, f"one of {', '.join(options)}")
        return value

    def items(self, key: str) -> list[Any] | None:
        if not self.has(key):
            return None
        value = self.data[key]
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return value

    def texts(self, key: str) -> tuple[str, ...] | None:
        values = self.items(key)
        if values is None:
            return None
        if not all(isinstance(item, str) for item in values):
            raise self._bad(key, "a list of strings")
        return tuple(values)

    def integers(self, key: str, *, minimum: int | None = None) -> tuple[int, ...] | None:
        values = self.items(key)
        if values is None:
            return None
        for item in values:
            if isinstance(item, bool) or not isinstance(item, int):
                raise self._bad(key, "a list of integers")
            if minimum is not None and item < minimum:
                raise self._bad(key, f"a list of integers >= {minimum}")
        return tuple(values)

    def numbers(self, key: str, *, maximum: float | None = None) -> tuple[float, ...] | None:
        values = self.items(key)
        if values is None:
            return None
        checked = []
        for item in values:
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise self._bad(key, "a list of numbers")
            number = float(item)
            if not 0.0 <= number <= (float("inf") if maximum is None else maximum):
                raise self._bad(key, f"a list of numbers between 0 and {maximum}")
            checked.append(number)
        return tuple(checked)
