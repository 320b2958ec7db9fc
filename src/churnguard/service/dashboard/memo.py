"""Aggregates the dashboard keeps between requests while the data they come from holds.

Only aggregates: every person-level figure is read per request, never cached, so an erased
customer disappears from the next page at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Memo:
    """The latest value of each named aggregate, kept while its key holds (aggregates only:
    never person-level rows)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[Hashable, Any]] = {}

    def get(self, name: str, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            found = self._values.get(name)
        if found is not None and found[0] == key:
            return found[1]
        value = compute()
        with self._lock:
            self._values[name] = (key, value)
        return value


__all__ = ["Memo"]
