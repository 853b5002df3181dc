"""What every message the device sends starts with, and the stamps it is made of.

Every payload carries ``schema``, ``device_id``, ``boot_id`` (one per run of the process),
``seq`` (counting up within the boot: ``(device_id, boot_id, seq)`` identifies a message for
a consumer that deduplicates), ``t`` (UTC, ISO 8601 with a ``Z``) and ``t_synced`` (whether
the wall clock was synchronised when the message was made).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

BOOT_ID_HEX = 12


def new_boot_id() -> str:
    """A fresh identifier for one run of the device process."""
    return uuid.uuid4().hex[:BOOT_ID_HEX]


def utc_iso(t: datetime | None = None, timespec: str = "milliseconds") -> str:
    """``t`` (default: now) as ISO 8601 UTC with a ``Z``."""
    t = datetime.now(UTC) if t is None else t.astimezone(UTC)
    return t.isoformat(timespec=timespec).replace("+00:00", "Z")


def utc_iso_ago(seconds_ago: float) -> str:
    """The wall time ``seconds_ago`` before now, as ``utc_iso`` writes it."""
    return utc_iso(datetime.now(UTC) - timedelta(seconds=seconds_ago))


class Envelope:
    """Makes each message's envelope; safe to call from any thread (commands and alarms
    publish from threads of their own, and ``boot_id`` + ``seq`` must stay unique).

    ``synced`` says whether the wall clock is synchronised (``WallClock.synced``); ``extra``,
    when given, adds fields to every envelope (a replay says where on its recording it is).
    """

    def __init__(self, device_id: str, boot_id: str | None = None, *,
                 synced: Callable[[], bool] = lambda: False,
                 extra: Callable[[], dict] | None = None) -> None:
        self.device_id = device_id
        self.boot_id = boot_id or new_boot_id()
        self.synced = synced
        self.extra = extra
        self.seq = 0
        self._lock = threading.Lock()

    def __call__(self, schema: str) -> dict:
        with self._lock:
            self.seq += 1
            seq = self.seq
        message = {"schema": schema, "device_id": self.device_id, "boot_id": self.boot_id,
                   "seq": seq, "t": utc_iso(), "t_synced": self.synced()}
        if self.extra is not None:
            message.update(self.extra())
        return message
