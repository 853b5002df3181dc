"""Store and forward: what must not be lost waits on disk until the broker acknowledged it.

Pain estimates, alarm events and command results are written to an SQLite database in
``state_dir`` (WAL journal, ``synchronous=FULL``: a committed entry survives SIGKILL and power
loss) before anything is sent. ``OutboxSender`` publishes the entries in order while the link
is up and deletes an entry only once paho reports its PUBACK (``on_publish`` with the mid). An
entry that waited (stored while offline, behind a backlog, or left by an earlier run) goes out
with ``late: true`` and its original timestamp; ``boot_id`` + ``seq`` let a consumer drop the
duplicates QoS 1 allows (a PUBACK lost with the connection means a resend).

The store is bounded: past ``max_entries`` the oldest entries are evicted, counted in a
persistent counter, logged and reported in the device's status message.

The WAL is kept small (checkpoints every ``WAL_CHECKPOINT_PAGES`` pages, truncated to
``WAL_LIMIT_BYTES``): a small state partition does not fill in normal running. The sender
(``device/comms/sender.py``) publishes the entries and holds in memory what the disk refuses.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from device.config.paths import private_dir, private_file
from device.processing.state_files import OnDamaged, Step, check_sqlite, migrate

log = logging.getLogger(__name__)

def outbox_path(state_dir: str | Path, device_id: str) -> Path:
    """One outbox per device id in ``state_dir`` (a demo and a device may share a directory)."""
    return Path(state_dir) / f"outbox-{device_id}.sqlite3"


#: Stored live but not handed to paho within this (the link dropped meanwhile): late.
LATE_AFTER_S = 5.0
#: SQLite's default checkpoints a WAL at 1000 pages and never shrinks it (~4 MB seen).
WAL_CHECKPOINT_PAGES = 64
WAL_LIMIT_BYTES = 256 * 1024

SCHEMA_STEPS = (
    Step(("""CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        schema TEXT,
        live INTEGER NOT NULL,
        stored_unix_s REAL NOT NULL)""",
          "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")),
)


@dataclass(frozen=True)
class Entry:
    id: int
    topic: str  # absolute MQTT topic
    payload: str  # JSON text as stored
    schema: str | None
    live: bool  # stored while the link was up with nothing waiting ahead of it
    stored_unix_s: float

    def body(self, late: bool) -> bytes:
        if not late:
            return self.payload.encode()
        message = json.loads(self.payload)
        message["late"] = True
        return json.dumps(message, separators=(",", ":")).encode()


class Outbox:
    """The on-disk queue. Thread-safe; one connection guarded by a lock."""

    def __init__(self, path: str | Path, max_entries: int = 50_000, *,
                 on_damaged: OnDamaged | None = None) -> None:
        if max_entries < 1:
            raise ValueError(f"outbox max_entries must be >= 1, got {max_entries}")
        self.path = Path(path)
        check_sqlite(self.path, on_damaged)  # a damaged file is moved aside, not opened
        private_file(private_dir(self.path.parent) / self.path.name)
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        migrate(self._db, self.path, SCHEMA_STEPS)
        # Whatever an earlier run left behind is late by definition.
        self._db.execute("UPDATE entries SET live = 0 WHERE live = 1")
        self.evicted = self._counter("evicted")
        self.resumed = self.count()
        if self.resumed:
            log.warning("outbox %s: %d entries left from an earlier run will be sent", self.path,
                        self.resumed)

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def put(self, topic: str, message: dict, *, live: bool = False) -> int:
        """Store one message durably; returns its id. Evicts the oldest beyond the bound."""
        payload = json.dumps(message, separators=(",", ":"), allow_nan=False)
        schema = message.get("schema") if isinstance(message.get("schema"), str) else None
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO entries (topic, payload, schema, live, stored_unix_s) "
                    "VALUES (?, ?, ?, ?, ?)", (topic, payload, schema, int(live), time.time()))
                entry_id = int(cur.lastrowid)
                (count,) = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()
                excess = count - self.max_entries
                if excess > 0:
                    self._db.execute("DELETE FROM entries WHERE id IN (SELECT id FROM entries "
                                     "ORDER BY id LIMIT ?)", (excess,))
                    self._db.execute(
                        "INSERT INTO counters (name, value) VALUES ('evicted', ?) ON CONFLICT"
                        "(name) DO UPDATE SET value = value + excluded.value", (excess,))
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back itself (disk full): a second ROLLBACK would raise
                # "no transaction is active" and hide the real cause.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            if excess > 0:
                self.evicted += excess
        if excess > 0:
            log.warning("outbox full (%d entries): evicted the %d oldest, %d evicted so far",
                        self.max_entries, excess, self.evicted)
        return entry_id

    def pending(self, after_id: int = 0, limit: int = 100) -> list[Entry]:
        """Entries in order, oldest first, with an id above ``after_id``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, schema, live, stored_unix_s FROM entries WHERE id > ? ORDER BY id "
                "LIMIT ?", (after_id, limit)).fetchall()
        return [Entry(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    def remove(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._lock:
            self._db.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in ids])

    def max_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()[0])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def try_write(self) -> None:
        """One small write transaction: raises as ``put`` would while the disk refuses."""
        with self._lock:
            self._db.execute("INSERT INTO counters (name, value) VALUES ('write_check', 1) "
                             "ON CONFLICT(name) DO UPDATE SET value = value + 1")

    def oldest_unix_s(self) -> float | None:
        with self._lock:
            return self._db.execute("SELECT MIN(stored_unix_s) FROM entries").fetchone()[0]

    def stats(self) -> dict[str, int]:
        return {"pending": self.count(), "evicted": self.evicted, "max_entries": self.max_entries}

    def close(self) -> None:
        with self._lock:
            self._db.close()
