"""Bounded queues between threads: a full queue drops its oldest item and counts it."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """A bounded FIFO that never blocks a producer.

    A reader thread must never stall on a slow consumer (the chip's FIFO would overflow
    instead, losing newer data); dropping the oldest block loses the least useful data and
    ``dropped`` says how much.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.dropped = 0
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)

    def put(self, item: T) -> None:
        with self._lock:
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._not_empty.notify()

    def drain(self) -> list[T]:
        """Everything queued, oldest first; never blocks."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items

    def get(self, timeout: float | None = None) -> T | None:
        with self._not_empty:
            if not self._items and not self._not_empty.wait_for(lambda: bool(self._items), timeout):
                return None
            return self._items.popleft()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
