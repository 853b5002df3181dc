"""The outbox's sender: publishes the stored entries in order and removes them on PUBACK.

``OutboxSender`` hands entries to paho while the link is up (at most ``max_in_flight``
unacknowledged) and deletes each once paho reports its PUBACK (``on_publish`` with the mid).
Nothing about one message's state stops it: a message paho did not take (any rc but success,
e.g. ``MQTT_ERR_NO_CONN`` in the moment between the socket closing and ``on_disconnect``) is
not in flight and ends the batch; what the broker acknowledged is removed even when another
entry misbehaves.

When storing fails (disk full, I/O error), what arrives meanwhile is kept in memory, in order,
up to ``HELD_MAX`` entries (beyond it the oldest go, counted as ``lost``) and is sent from
there; the sender retries storage every ``STORE_RETRY_S`` and moves what it holds to disk once
space returns. ``on_storage(reason)`` tells of the failure (the real cause) and, with None, of
the recovery: the device raises a technical alarm on it.
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

import paho.mqtt.client as mqtt

from device.comms.outbox import LATE_AFTER_S, Outbox

log = logging.getLogger(__name__)

#: Entries kept in memory while the disk refuses them (a pain estimate is ~400 bytes).
HELD_MAX = 5000
STORE_RETRY_S = 2.0


@dataclass(eq=False)
class Held:
    """A message the disk refused, kept in memory until stored or acknowledged."""

    topic: str
    message: dict
    handed: bool = False

    def body(self) -> bytes:  # it waited: late by definition
        return json.dumps({**self.message, "late": True}, separators=(",", ":")).encode()


class OutboxSender:
    """Publishes the outbox through an ``MqttLink`` on its own thread, in order.

    ``send(topic, message)`` stores the message and wakes the thread; the thread hands entries
    to paho while connected (at most ``max_in_flight`` unacknowledged) and deletes those whose
    PUBACK arrived. Entries in flight when the connection drops are resent by paho itself after
    the reconnect (same mid); the rest follow them, so the order holds. Nothing about one
    message's state stops the loop: a message paho did not take is not in flight.
    """

    def __init__(self, outbox: Outbox, link, *, qos: int = 1, max_in_flight: int = 50,
                 on_evicted: Callable[[int], None] | None = None,
                 on_storage: Callable[[str | None], None] | None = None) -> None:
        self.outbox = outbox
        self.link = link
        self.qos = max(1, qos)  # an outbox at QoS 0 would have nothing to wait for
        self.max_in_flight = max_in_flight
        self.on_evicted = on_evicted
        self.on_storage = on_storage
        self.sent = 0
        self.sent_late = 0
        self.confirmed = 0
        self.held: deque[Held] = deque()  # refused by the disk, oldest first
        self.lost = 0  # held past HELD_MAX
        self.storage_error: str | None = None  # the real cause while storing fails
        self._retry_at = 0.0
        self._unremoved: set[int] = set()  # acknowledged; the disk refused the delete so far
        # mid -> (entry id or Held, info)
        self._in_flight: dict[int, tuple[int | Held, mqtt.MQTTMessageInfo]] = {}
        self._last_id = 0  # highest entry id handed to paho since the in-flight set was empty
        self._handed_through = 0  # highest entry id ever handed to paho
        self._late_through = outbox.max_id()  # highest id of an entry that had to wait
        self._acked: deque[int] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._put_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failures = 0
        link.ack_listeners.append(self._on_ack)
        link.connect_listeners.append(lambda _session_present: self._wake.set())

    # -- producer side -----------------------------------------------------------------------
    def send(self, topic: str, message: dict) -> int:
        """Store ``message`` for ``topic`` (absolute) and have it published; returns its id
        (-1 when the disk refused it and it is held in memory)."""
        entry_id = -1
        with self._put_lock:
            # Live only if it can go out now and nothing that waited is still ahead of it.
            live = self.link.connected and self._late_through <= self._handed_through
            evicted_before = self.outbox.evicted
            if not self.held:  # behind what is held, a message waits its turn in memory
                try:
                    entry_id = self.outbox.put(topic, message, live=live)
                except sqlite3.Error as exc:
                    self._storage_failed(exc)
            if entry_id < 0:
                self._hold(topic, message)
            elif not live:
                self._late_through = entry_id
        if self.outbox.evicted != evicted_before and self.on_evicted is not None:
            self.on_evicted(self.outbox.evicted)
        self._idle.clear()
        self._wake.set()
        return entry_id

    def _hold(self, topic: str, message: dict) -> None:  # under _put_lock
        self.held.append(Held(topic, json.loads(json.dumps(message, allow_nan=False))))
        if len(self.held) > HELD_MAX:
            self.held.popleft()
            self.lost += 1
            if self.lost == 1 or self.lost % 100 == 0:
                log.error("outbox %s: %d entries held in memory, the most it keeps: %d lost "
                          "so far (%s)", self.outbox.path, HELD_MAX, self.lost,
                          self.storage_error)

    def _storage_failed(self, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self._retry_at = time.monotonic() + STORE_RETRY_S
        if self.storage_error is None:
            log.error("outbox %s: cannot store (%s); keeping up to %d entries in memory and "
                      "retrying every %.0f s", self.outbox.path, reason, HELD_MAX, STORE_RETRY_S)
            self.storage_error = reason
            self._report(reason)

    def _storage_ok(self) -> None:
        if self.storage_error is not None and not self.held and not self._unremoved:
            log.warning("outbox %s: storing again (%d lost while it could not)", self.outbox.path,
                        self.lost)
            self.storage_error = None
            self._report(None)

    def _report(self, reason: str | None) -> None:
        if self.on_storage is not None:
            try:
                self.on_storage(reason)
            except Exception:  # noqa: BLE001 - the report must not stop the sender
                log.exception("outbox storage report failed")

    # -- the thread ----------------------------------------------------------------------------
    def start(self) -> OutboxSender:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
            self._thread.start()
        self._wake.set()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_idle(self, timeout_s: float) -> bool:
        """True once everything stored has been acknowledged (for tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._drained():
                return True
            self._wake.set()
            self._idle.wait(0.05)
        return False

    def _drained(self) -> bool:
        return not self._in_flight and not self.held and self.outbox.count() == 0

    def _on_ack(self, mid: int) -> None:  # paho's network thread: no locks, no I/O
        self._acked.append(mid)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._confirm()
                self._store_held()
                if self.link.connected:
                    self._hand_over()
                self._failures = 0
            except Exception as exc:  # noqa: BLE001 - the sender must outlive any one failure
                self._failures += 1
                if self._failures == 1 or self._failures % 120 == 0:
                    log.exception("outbox sender failed (%d in a row); retrying", self._failures)
                if isinstance(exc, sqlite3.Error):
                    self._storage_failed(exc)
                self._stop.wait(0.5)
            try:
                if self._drained():
                    self._idle.set()
            except sqlite3.Error:
                pass

    def _done(self, key: int | Held) -> None:
        """``key`` was acknowledged: forget it (the disk's delete follows in ``_confirm``)."""
        self.confirmed += 1
        if isinstance(key, Held):
            with self._put_lock:
                try:
                    self.held.remove(key)
                except ValueError:  # stored on disk meanwhile; that copy goes out again
                    pass
        else:
            self._unremoved.add(key)

    def _confirm(self) -> None:
        while self._acked:
            mid = self._acked.popleft()
            held = self._in_flight.get(mid)
            # A mid is reused once paho released it; is_published() tells which message it was.
            if held is not None and acknowledged(held[1]):
                del self._in_flight[mid]
                self._done(held[0])
        for mid, (key, info) in list(self._in_flight.items()):
            if acknowledged(info):  # acknowledged while the ack queue was being drained
                del self._in_flight[mid]
                self._done(key)
        if self._unremoved:
            try:
                self.outbox.remove(sorted(self._unremoved))
            except sqlite3.Error as exc:
                self._storage_failed(exc)
                return
            self._unremoved.clear()
            self._storage_ok()

    def _store_held(self) -> None:
        """Move what memory holds to disk, in order, once the disk takes it again."""
        if self.storage_error is None or time.monotonic() < self._retry_at:
            return
        if not self.held:  # all held went out: check the disk takes a write again
            try:
                self.outbox.try_write()
            except sqlite3.Error as exc:
                self._storage_failed(exc)
                return
        with self._put_lock:
            while self.held:
                try:
                    entry_id = self.outbox.put(self.held[0].topic, self.held[0].message)
                except sqlite3.Error as exc:
                    self._storage_failed(exc)
                    return
                self.held.popleft()
                self._late_through = entry_id
        self._storage_ok()

    def _take(self, key: int | Held, info: mqtt.MQTTMessageInfo) -> None:
        stale = self._in_flight.pop(info.mid, None)
        if stale is not None and acknowledged(stale[1]):  # its ack is still queued
            self._done(stale[0])
        self._in_flight[info.mid] = (key, info)
        self.sent += 1
        if acknowledged(info):
            self._wake.set()

    def _hand_over(self) -> None:
        if not self._in_flight:
            # Nothing unacknowledged left with paho: start again from the oldest stored entry
            # (covers a restart, and entries paho dropped when the client was rebuilt).
            self._last_id = 0
            for held in list(self.held):
                held.handed = False
        room = self.max_in_flight - len(self._in_flight)
        if room <= 0:
            return
        after = self._last_id
        while room > 0:  # pages of the disk, past entries acknowledged but not yet deleted
            asked = room
            batch = self.outbox.pending(after, asked)
            for entry in batch:
                after = entry.id
                if entry.id in self._unremoved:  # acknowledged already
                    self._last_id = entry.id
                    continue
                if not self.link.connected:  # the connection went mid-batch: it ends here
                    return
                late = not entry.live or time.time() - entry.stored_unix_s > LATE_AFTER_S
                try:
                    body = entry.body(late)
                except ValueError:
                    log.error("outbox entry %d is not JSON; dropped", entry.id)
                    self.outbox.remove([entry.id])
                    continue
                info = self.link.publish_raw(entry.topic, body, qos=self.qos,
                                             schema=entry.schema)
                if not self._taken(info, entry.id):
                    return
                self._take(entry.id, info)
                self._last_id = entry.id
                self._handed_through = max(self._handed_through, entry.id)
                self.sent_late += late
                room -= 1
            if len(batch) < asked:
                break  # nothing more on disk: what is held in memory is next
        if room <= 0:
            return  # more on disk: what is held in memory is newer, it waits its turn
        with self._put_lock:
            waiting = [h for h in self.held if not h.handed][:room]
        for held in waiting:
            if not self.link.connected:
                return
            schema = held.message.get("schema")
            info = self.link.publish_raw(held.topic, held.body(), qos=self.qos,
                                         schema=schema if isinstance(schema, str) else None)
            if not self._taken(info, "held"):
                return
            held.handed = True
            self._take(held, info)
            self.sent_late += 1

    @staticmethod
    def _taken(info: mqtt.MQTTMessageInfo, what) -> bool:
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            return True
        # Not taken (the socket closed before paho noticed, or its queue is full): not in
        # flight, and nothing after it goes out before it. paho may still send the copy it
        # queued; the consumer drops the duplicate by boot_id + seq.
        if info.rc != mqtt.MQTT_ERR_NO_CONN:
            log.warning("outbox: paho refused entry %s: %s; retrying", what,
                        mqtt.error_string(info.rc))
        return False


def acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker acknowledged the message paho took with ``info``. paho raises from
    ``is_published`` for a message it did not take, on every call (it never updates ``rc``):
    such a message is simply not acknowledged."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False
