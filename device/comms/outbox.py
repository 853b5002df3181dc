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
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from device.processing.state_files import OnDamaged, check_sqlite

log = logging.getLogger(__name__)

def outbox_path(state_dir: str | Path, device_id: str) -> Path:
    """One outbox per device id in ``state_dir`` (a demo and a device may share a directory)."""
    return Path(state_dir) / f"outbox-{device_id}.sqlite3"


#: Stored live but not handed to paho within this (the link dropped meanwhile): late.
LATE_AFTER_S = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    schema TEXT,
    live INTEGER NOT NULL,
    stored_unix_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_sqlite(self.path, on_damaged)  # a damaged file is moved aside, not opened
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
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

    def stats(self) -> dict[str, int]:
        return {"pending": self.count(), "evicted": self.evicted, "max_entries": self.max_entries}

    def close(self) -> None:
        with self._lock:
            self._db.close()


class OutboxSender:
    """Publishes the outbox through an ``MqttLink`` on its own thread, in order.

    ``send(topic, message)`` stores the message and wakes the thread; the thread hands entries
    to paho while connected (at most ``max_in_flight`` unacknowledged) and deletes those whose
    PUBACK arrived. Entries in flight when the connection drops are resent by paho itself after
    the reconnect (same mid); the rest follow them, so the order holds.
    """

    def __init__(self, outbox: Outbox, link, *, qos: int = 1, max_in_flight: int = 50,
                 on_evicted: Callable[[int], None] | None = None) -> None:
        self.outbox = outbox
        self.link = link
        self.qos = max(1, qos)  # an outbox at QoS 0 would have nothing to wait for
        self.max_in_flight = max_in_flight
        self.on_evicted = on_evicted
        self.sent = 0
        self.sent_late = 0
        self.confirmed = 0
        self._in_flight: dict[int, tuple[int, mqtt.MQTTMessageInfo]] = {}  # mid -> (id, info)
        self._last_id = 0  # highest entry id handed to paho since the in-flight set was empty
        self._handed_through = 0  # highest entry id ever handed to paho
        self._late_through = outbox.max_id()  # highest id of an entry that had to wait
        self._acked: deque[int] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._put_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        link.ack_listeners.append(self._on_ack)
        link.connect_listeners.append(lambda _session_present: self._wake.set())

    # -- producer side -----------------------------------------------------------------------
    def send(self, topic: str, message: dict) -> int:
        """Store ``message`` for ``topic`` (absolute) and have it published; returns its id."""
        with self._put_lock:
            # Live only if it can go out now and nothing that waited is still ahead of it.
            live = self.link.connected and self._late_through <= self._handed_through
            evicted_before = self.outbox.evicted
            entry_id = self.outbox.put(topic, message, live=live)
            if not live:
                self._late_through = entry_id
        if self.outbox.evicted != evicted_before and self.on_evicted is not None:
            self.on_evicted(self.outbox.evicted)
        self._idle.clear()
        self._wake.set()
        return entry_id

    # -- the thread ----------------------------------------------------------------------------
    def start(self) -> OutboxSender:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
            self._thread.start()
        self._wake.set()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wait_idle(self, timeout_s: float) -> bool:
        """True once everything stored has been acknowledged (for tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox.count() == 0 and not self._in_flight:
                return True
            self._wake.set()
            self._idle.wait(0.05)
        return False

    def _on_ack(self, mid: int) -> None:  # paho's network thread: no locks, no I/O
        self._acked.append(mid)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._confirm()
                if self.link.connected:
                    self._hand_over()
            except Exception:
                log.exception("outbox sender failed; retrying")
                time.sleep(0.5)
            if not self._in_flight and self.outbox.count() == 0:
                self._idle.set()

    def _confirm(self) -> None:
        done: list[int] = []
        while self._acked:
            mid = self._acked.popleft()
            held = self._in_flight.get(mid)
            # A mid is reused once paho released it; is_published() tells which message it was.
            if held is not None and acknowledged(held[1]):
                del self._in_flight[mid]
                done.append(held[0])
        for mid, (entry_id, info) in list(self._in_flight.items()):
            if acknowledged(info):  # acknowledged while the ack queue was being drained
                del self._in_flight[mid]
                done.append(entry_id)
        if done:
            self.outbox.remove(done)
            self.confirmed += len(done)

    def _hand_over(self) -> None:
        if not self._in_flight:
            # Nothing unacknowledged left with paho: start again from the oldest stored entry
            # (covers a restart, and entries paho dropped when the client was rebuilt).
            self._last_id = 0
        room = self.max_in_flight - len(self._in_flight)
        if room <= 0:
            return
        for entry in self.outbox.pending(self._last_id, room):
            if not self.link.connected:  # the connection went mid-batch: the batch ends here
                return
            late = not entry.live or time.time() - entry.stored_unix_s > LATE_AFTER_S
            try:
                body = entry.body(late)
            except ValueError:
                log.error("outbox entry %d is not JSON; dropped", entry.id)
                self.outbox.remove([entry.id])
                continue
            info = self.link.publish_raw(entry.topic, body, qos=self.qos, schema=entry.schema)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                # Not taken (the socket closed before paho noticed, or its queue is full): not
                # in flight, and nothing after it goes out before it. paho may still send the
                # copy it queued; the consumer drops the duplicate by boot_id + seq.
                if info.rc != mqtt.MQTT_ERR_NO_CONN:
                    log.warning("outbox: paho refused entry %d: %s; retrying", entry.id,
                                mqtt.error_string(info.rc))
                return
            stale = self._in_flight.pop(info.mid, None)
            if stale is not None and acknowledged(stale[1]):  # its ack is still queued
                self.outbox.remove([stale[0]])
                self.confirmed += 1
            self._in_flight[info.mid] = (entry.id, info)
            self._last_id = entry.id
            self._handed_through = max(self._handed_through, entry.id)
            self.sent += 1
            self.sent_late += late
            if acknowledged(info):
                self._wake.set()


def acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker acknowledged the message paho took with ``info``. paho raises from
    ``is_published`` for a message it did not take, on every call (it never updates ``rc``):
    such a message is simply not acknowledged."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False
