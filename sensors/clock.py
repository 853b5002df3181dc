"""The clock seam: every time stamp and every wait in painmon goes through a Clock.

On a device the clock is the kernel's monotonic clock. In the demo and in tests the same code
runs on a virtual clock: ``ScaledClock`` lets time pass ``speed`` times faster than real time
(threads keep working as they would), ``SteppedClock`` only moves when something sleeps or a
test advances it, so single-threaded tests are exact and instant.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Monotonic time in nanoseconds."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


class MonotonicClock:
    """Real time: ``time.monotonic_ns`` and ``time.sleep``."""

    speed = 1.0

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ScaledClock:
    """Virtual time running ``speed`` times faster than real time, starting at ``start_ns``."""

    def __init__(self, speed: float = 1.0, start_ns: int = 0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = float(speed)
        self._start_ns = int(start_ns)
        self._real0 = time.monotonic_ns()

    def now_ns(self) -> int:
        return self._start_ns + int((time.monotonic_ns() - self._real0) * self.speed)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)


class SteppedClock:
    """Virtual time that moves only when someone sleeps or calls ``advance``.

    Sleeping advances the clock at once, so a driver that waits for a conversion finishes
    instantly while seeing exactly the time it asked for. Thread-safe, but meant for one
    thread: with several threads, sleeps add up.
    """

    speed = float("inf")

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = int(start_ns)
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            return self._now_ns

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        with self._lock:
            self._now_ns += round(seconds * 1e9)

    def advance_to(self, t_ns: int) -> None:
        with self._lock:
            if t_ns < self._now_ns:
                raise ValueError("a monotonic clock cannot go back")
            self._now_ns = int(t_ns)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)


class Deadline:
    """A time limit on a wait, on a given clock: ``while not d.expired(): ...``."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.end_ns = clock.now_ns() + round(seconds * 1e9)

    def expired(self) -> bool:
        return self.clock.now_ns() >= self.end_ns

    def remaining_s(self) -> float:
        return max(0.0, (self.end_ns - self.clock.now_ns()) / 1e9)
