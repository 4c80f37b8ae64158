"""A small thread-safe TTL cache that also merges concurrent look-ups of the same key.

A link that 50 newsletters share is fetched once, even when the 50 resolutions run at the
same time on different threads: the first computes, the others wait for its answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Pending(Generic[V]):
    done: threading.Event = field(default_factory=threading.Event)
    value: V | None = None
    failed: bool = False


class TTLCache(Generic[K, V]):
    """Values kept ``ttl`` seconds (by ``clock``), at most ``max_entries`` (oldest dropped)."""

    def __init__(
        self, ttl: float, clock: Callable[[], float], *, max_entries: int = 20_000
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._pending: dict[K, _Pending[V]] = {}
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> tuple[V, bool]:
        """The cached value for ``key`` (True) or the one ``compute`` returns now (False)."""
        if self._ttl <= 0:
            return compute(), False
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] > self._clock():
                    self.hits += 1
                    return entry[1], True
                pending = self._pending.get(key)
                if pending is None:
                    mine: _Pending[V] = _Pending()
                    self._pending[key] = mine
                    self.misses += 1
                    break
            pending.done.wait()
            if not pending.failed and pending.value is not None:
                with self._lock:
                    self.hits += 1
                return pending.value, True
            # The computation we waited for raised: try again (maybe computing it ourselves).
        try:
            value = compute()
        except BaseException:
            mine.failed = True
            with self._lock:
                del self._pending[key]
            mine.done.set()
            raise
        mine.value = value
        with self._lock:
            self._entries[key] = (self._clock() + self._ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
            del self._pending[key]
        mine.done.set()
        return value, False

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
