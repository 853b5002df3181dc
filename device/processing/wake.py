"""A flag with a wake-up that a signal handler may set: it never waits for a lock.

``threading.Event.set`` takes the event's internal lock. A signal handler runs in the main
thread between two bytecodes, possibly while that same thread holds that lock inside
``Event.wait`` or ``Event.set``; the lock is not re-entrant, so the handler would wait for
itself forever. ``Wake`` keeps the flag in a plain attribute and wakes its waiter by releasing
a lock the waiter blocks on; releasing never blocks.

One waiter at a time (the processing loop); any number of setters (reader threads, handlers).
"""

from __future__ import annotations

import threading


class Wake:
    """``set`` / ``is_set`` / ``clear`` / ``wait`` like ``threading.Event``, for one waiter."""

    def __init__(self) -> None:
        self._flag = False
        self._token = threading.Lock()
        self._token.acquire()  # held: no wake-up pending

    def set(self) -> None:
        self._flag = True
        try:
            self._token.release()
        except RuntimeError:  # a wake-up is already pending
            pass

    def is_set(self) -> bool:
        return self._flag

    def clear(self) -> None:
        self._flag = False
        self._token.acquire(blocking=False)  # drop a pending wake-up

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once set (at once if it already is); False after ``timeout_s``."""
        if self._flag:
            return True
        if timeout_s is None:
            self._token.acquire()
        else:
            self._token.acquire(timeout=max(0.0, timeout_s))
        return self._flag
