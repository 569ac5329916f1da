"""Named instances shared by a whole process: one name, one instance."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from ._errors import ConfigError

__all__ = ("Registry",)

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A read-only mapping of name to instance, filled by a pattern's factory function.

    The ops app and metrics listeners iterate it; users get instances through the
    factory (``stalwart.circuit_breaker(name, ...)``), which checks settings.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()

    def get_or_create(self, name: str, create: Callable[[], T], check: Callable[[T], None]) -> T:
        """The instance called ``name``: ``check``-ed if it exists, else ``create``-d."""
        if not isinstance(name, str) or not name:
            raise ConfigError("name", f"must be a non-empty string, got {name!r}")
        with self._lock:
            existing = self._items.get(name)
            if existing is None:
                existing = self._items[name] = create()
                return existing
        check(existing)
        return existing

    def remove(self, name: str) -> None:
        """Forget ``name`` (the next factory call creates a new instance)."""
        with self._lock:
            self._items.pop(name, None)

    def clear(self) -> None:
        """Forget every instance: for tests and for reconfiguring a process."""
        with self._lock:
            self._items.clear()

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<{self.kind} registry: {sorted(self._items)}>"
