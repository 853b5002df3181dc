"""Is the wall clock trustworthy? Samples are stamped on the monotonic clock; wall time is
only attached, with a flag saying whether it came from a synchronised clock.

A Raspberry Pi has no real-time clock: until NTP (or a GPS, or PTP) has set the time, the
kernel starts from the last saved time (fake-hwclock) or 1970. Two signals say that the clock
is synchronised, neither needing a daemon to be asked:

- the kernel's NTP state, read with ``adjtimex(2)`` in read-only mode (``modes = 0``, allowed
  without privileges): it returns ``TIME_ERROR`` (5) while ``STA_UNSYNC`` is set, which every
  NTP client (chrony, ntpd, systemd-timesyncd) clears once it disciplines the clock;
- ``/run/systemd/timesync/synchronized``, which systemd-timesyncd touches on its first sync
  (systemd >= 239).

Either one is enough. ``t_synced`` in every message is the answer at the time it was built.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

TIME_ERROR = 5  # adjtimex(2): "the system clock is not synchronized to a reliable server"
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


@functools.cache
def _adjtimex():
    # Looked up once: ctypes.util.find_library runs ``ldconfig -p`` in a child process, which
    # on the processing loop (every recheck) cost a fork of the whole app and a latency spike.
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None


def kernel_time_state() -> int | None:
    """``adjtimex`` clock state (0 TIME_OK .. 5 TIME_ERROR); None where it is unavailable."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    # struct timex is 208 bytes on 64-bit Linux, less on 32-bit; its first field is the
    # ``modes`` word, zero here so the call only reads. A larger zeroed buffer is safe.
    buf = ctypes.create_string_buffer(512)
    state = adjtimex(buf)
    return None if state < 0 else int(state)


def clock_synchronised(flag: Path = TIMESYNCD_FLAG) -> tuple[bool, str]:
    """(synced, how we know)."""
    state = kernel_time_state()
    if state is not None and state != TIME_ERROR:
        return True, f"kernel NTP state {state}"
    if flag.exists():
        return True, f"{flag} present"
    if state is None:
        return False, "adjtimex unavailable and no timesyncd flag"
    return False, "kernel reports STA_UNSYNC (no NTP sync yet)"


class WallClock:
    """Wall time for messages, with the synced flag re-checked every ``recheck_s``."""

    def __init__(self, recheck_s: float = 10.0, flag: Path = TIMESYNCD_FLAG) -> None:
        self.recheck_s = recheck_s
        self.flag = flag
        self._checked_ns: int | None = None
        self._synced = False
        self.reason = "not checked"

    def synced(self) -> bool:
        now = time.monotonic_ns()
        if self._checked_ns is None or now - self._checked_ns >= self.recheck_s * 1e9:
            synced, self.reason = clock_synchronised(self.flag)
            if synced != self._synced or self._checked_ns is None:
                (log.info if synced else log.warning)("wall clock %s: %s",
                                                      "synced" if synced else "NOT synced",
                                                      self.reason)
            self._synced, self._checked_ns = synced, now
        return self._synced
