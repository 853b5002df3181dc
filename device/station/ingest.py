"""Ingest: every device under the prefix, from the broker into the store.

paho's network thread only stamps and queues each message; one writer thread validates a
batch against the published schemas and stores it in one transaction. A payload that is not
JSON, fails its schema or names another device than its topic is refused: counted, logged
(rate-limited), kept in ``rejected_messages`` and counted on its bed; it never stops ingest.

The streams (pain, vitals, alarm events, command results) come through an MQTT 5 shared
subscription, so station processes in one group split them; the retained state (status,
active alarms, health) is subscribed by every process, because MQTT 5 sends no retained
messages on shared subscriptions and storing the newest state twice is harmless.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import exc as sa_exc

from device.comms.link import read_password
from device.config import MqttConfig
from device.processing.envelope import utc_iso
from device.station import api
from device.station.config import RetentionConfig
from device.station.store import Received, Store, parse_t
from device.station.upkeep import apply_retention, roll_up

log = logging.getLogger(__name__)
MAX_SEQ = 2**63 - 1


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    connected: bool = False
    #: Since when the broker is unreachable (None while connected).
    disconnected_since: float | None = field(default_factory=time.time)
    last_reject: str | None = None
    store_retries: int = 0
    #: Seconds from each stream message's device time to its row committed (the newest 20 000;
    #: late replayed ones left out): the device's clock and the station's must agree (NTP).
    lag_s: deque = field(default_factory=lambda: deque(maxlen=20_000))

    def lag_ms(self) -> dict:
        lags = sorted(self.lag_s)
        if not lags:
            return {"n": 0, "p50": None, "p99": None}
        def at(q: float) -> float:
            return round(1000 * lags[min(len(lags) - 1, int(q * len(lags)))], 1)
        return {"n": len(lags), "p50": at(0.5), "p99": at(0.99)}


def check(prefix: str, topic: str, payload: bytes, received_unix_s: float) -> Received | str:
    """The validated message, or why it is refused."""
    where = api.split_topic(prefix, topic)
    if where is None:
        return "not a station topic"
    device_id, subtopic = where
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(body, dict):
        return "not a JSON object"
    schema = api.SUBTOPICS[subtopic].schema
    errors = sorted(api.validator(schema).iter_errors(body), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        at = ".".join(str(p) for p in first.path) or "payload"
        return f"{schema}: {at}: {first.message[:200]}"
    # The schemas' date-time format is checked only with an optional jsonschema extra; the
    # station reads t itself, so it checks it here. seq must fit the databases' 64 bits.
    if "t" in body:
        try:
            parse_t(body["t"], 0.0)
        except (TypeError, ValueError):
            return f"{schema}: t: {str(body['t'])[:40]!r} is not an ISO 8601 date-time"
    if body.get("seq", 0) > MAX_SEQ:
        return f"{schema}: seq: {body['seq']} is beyond {MAX_SEQ}"
    if body["device_id"] != device_id:
        # Only the broker's ACL can stop a device writing under another's topic; a payload
        # naming another device is forged or misrouted either way.
        return f"device_id {body['device_id']!r} does not match the topic's {device_id!r}"
    return Received(device_id, subtopic, body, received_unix_s)


class Ingest:
    """Subscribe, validate, de-duplicate, store; publish the station's commands."""

    def __init__(self, store: Store, config: MqttConfig, *, group: str | None = "station",
                 client_id: str | None = None, retention: RetentionConfig | None = None,
                 batch_max: int = 500, batch_wait_s: float = 0.0,
                 rollup_every_s: float = 5.0, retention_every_s: float = 3600.0) -> None:
        self.store, self.config, self.group = store, config, group
        self.prefix = config.topic_prefix
        self.retention = retention or RetentionConfig()
        self.batch_max, self.batch_wait_s = batch_max, batch_wait_s
        self.rollup_every_s, self.retention_every_s = rollup_every_s, retention_every_s
        self.stats = IngestStats()
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._seen_max = 200_000
        self._touched: dict[str, set] = {"pain": set(), "vitals": set()}
        self._writer = threading.Thread(target=self._write_loop, name="station-writer",
                                        daemon=True)
        self.client_id = client_id or f"painmon-station-{uuid.uuid4().hex[:8]}"
        # Manual acknowledgement: a message's PUBACK leaves only once its row is committed (or
        # it is refused and kept). A station that dies before that gets it again from the
        # broker (its persistent session), so a crash loses nothing; the key drops the repeat.
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=mqtt.MQTTv5, reconnect_on_failure=True,
                                  manual_ack=True)
        self._connection = 0  # which connection a message came on: acks go back on that one
        self._ack_lock = threading.Lock()
        self.client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._configure_security()

    def _configure_security(self) -> None:
        tls = self.config.tls
        if tls.enabled:
            context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
            if tls.cert_file is not None:
                context.load_cert_chain(str(tls.cert_file),
                                        str(tls.key_file) if tls.key_file else None)
            self.client.tls_set_context(context)
        if self.config.username is not None:
            self.client.username_pw_set(self.config.username, read_password(self.config))

    # -- life --------------------------------------------------------------------------------
    def start(self) -> None:
        self._writer.start()
        props = Properties(PacketTypes.CONNECT)
        # A persistent session: the broker keeps this member's QoS 1 messages while it is away
        # for less than the session expiry (a restart, a network blip).
        props.SessionExpiryInterval = self.config.session_expiry_s
        self.client.connect_async(self.config.host, self.config.port,
                                  keepalive=self.config.keepalive_s, clean_start=False,
                                  properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        self._stop.set()
        self._writer.join(10)

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.stats.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.stats.connected

    def idle(self) -> bool:
        """Nothing waiting to be stored."""
        return self._queue.unfinished_tasks == 0

    # -- paho's thread -------------------------------------------------------------------------
    def _on_connect(self, client, _userdata, _flags, reason, _props) -> None:
        if reason.is_failure:
            log.error("station: broker refused the connection: %s", reason)
            return
        # Subscribed again on every connect: a restarted broker may have lost the session.
        client.subscribe([(topic, 1) for topic in api.subscriptions(self.prefix, self.group)])
        with self._ack_lock:
            self._connection += 1
        self.stats.connected, self.stats.disconnected_since = True, None
        log.info("station: connected to %s:%s", self.config.host, self.config.port)

    def _on_disconnect(self, _client, _userdata, _flags, reason, _props) -> None:
        if self.stats.connected:
            log.warning("station: broker connection lost: %s", reason)
        self.stats.connected = False
        self.stats.disconnected_since = self.stats.disconnected_since or time.time()

    def _on_message(self, _client, _userdata, message) -> None:
        self._queue.put((message.topic, bytes(message.payload), time.time(),
                         (self._connection, message.mid, message.qos)))

    # -- commands ------------------------------------------------------------------------------
    def send_command(self, device_id: str, command: str, payload: dict, username: str,
                     timeout_s: float = 5.0) -> str:
        """Publish a command (QoS 1), recorded with who sent it; its request id."""
        request_id = uuid.uuid4().hex[:16]
        body = {"request_id": request_id, "schema": f"painmon.command.{command}/1",
                "t": utc_iso(), **payload}  # sent now: the device refuses stale commands
        self.store.command_sent(request_id, device_id, command, body, username)
        info = self.client.publish(api.command_topic(self.prefix, device_id, command),
                                   json.dumps(body), qos=1)
        info.wait_for_publish(timeout_s)
        return request_id

    # -- the writer ----------------------------------------------------------------------------
    def _next_batch(self) -> list:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        # What is queued goes in one transaction: under load the batches grow by themselves
        # while the previous commit runs; batch_wait_s > 0 trades lag for fewer commits.
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=max(remaining, 0)) if remaining > 0
                             else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        next_rollup = time.monotonic() + self.rollup_every_s
        next_retention = time.monotonic()
        while not (self._stop.is_set() and self._queue.empty()):
            batch = self._next_batch()
            self._store_until_stored(batch)
            self._acknowledge(batch)
            for _ in batch:
                self._queue.task_done()
            now = time.monotonic()
            try:
                if now >= next_rollup:
                    touched, self._touched = self._touched, {"pain": set(), "vitals": set()}
                    roll_up(self.store, touched)
                    next_rollup = now + self.rollup_every_s
                if now >= next_retention:
                    deleted = apply_retention(self.store, self.retention)
                    if any(deleted.values()):
                        log.info("station: retention deleted %s", deleted)
                    next_retention = now + self.retention_every_s
            except Exception:
                log.exception("station: upkeep failed")

    def _acknowledge(self, batch: list) -> None:
        with self._ack_lock:
            for *_, (connection, mid, qos) in batch:
                # A message from an earlier connection is sent again by the broker (same
                # session) or went with a broker that forgot the session; its packet id may now
                # name another message, so it is not acknowledged here.
                if qos > 0 and connection == self._connection and self.stats.connected:
                    self.client.ack(mid, qos)

    def _store_until_stored(self, batch: list) -> None:
        """Store a batch, retrying in place while the database is away (nothing lost, nothing
        reordered). A batch the database refuses for its content is stored one message at a
        time, and a message it cannot take is refused like an invalid one, never retried
        forever in front of the others."""
        delay_s = 0.2
        while True:
            try:
                self._store_batch(batch)
                return
            except (sa_exc.OperationalError, sa_exc.InterfaceError):
                # The database away, a deadlock, a lock timeout: the same batch again.
                self.stats.store_retries += 1
                log.exception("station: storing %d messages failed; retrying in %.1f s",
                              len(batch), delay_s)
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)
            except Exception as exc:  # noqa: BLE001 - whatever else, never block the others
                if len(batch) == 1:
                    topic, payload, at, _ = batch[0]
                    where = api.split_topic(self.prefix, topic)
                    self.stats.rejected += 1
                    self._refuse_unstorable(at, topic, where, exc, payload)
                    return
                log.warning("station: the database refused a batch (%s); storing it one by one",
                            str(exc).splitlines()[0][:200])
                for item in batch:
                    self._store_until_stored([item])
                return

    def _refuse_unstorable(self, at, topic, where, exc, payload) -> None:
        reason = f"not storable: {str(exc).splitlines()[0][:300]}"
        log.warning("station: refused a message on %s: %s", topic[:120], reason)
        self.stats.last_reject = f"{topic[:120]}: {reason}"
        self._store_until_stored_rejected([(at, topic, where[0] if where else None, reason,
                                            payload)])

    def _store_until_stored_rejected(self, items: list) -> None:
        delay_s = 0.2
        while True:
            try:
                self.store.write_rejected(items)
                return
            except Exception:
                log.exception("station: storing a refused message failed; retrying")
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    def _store_batch(self, batch: list) -> None:
        if not batch:
            return
        good, bad, keys = [], [], set()
        for topic, payload, at, _ in batch:
            checked = check(self.prefix, topic, payload, at)
            if isinstance(checked, str):
                where = api.split_topic(self.prefix, topic)
                bad.append((at, topic, where[0] if where else None, checked, payload))
                continue
            if "seq" in checked.body:
                key = (checked.device_id, checked.body["boot_id"], checked.body["seq"])
                if key in self._seen or key in keys:
                    self.stats.duplicates += 1
                    continue
                keys.add(key)
            good.append(checked)
        touched = self.store.write(good)
        committed = time.time()
        for msg in good:
            if msg.subtopic in ("pain", "vitals") and not msg.body.get("late"):
                self.stats.lag_s.append(committed - parse_t(msg.body["t"], committed))
        # Remembered only once stored: a batch that failed is tried again in full.
        for key in keys:
            self._seen[key] = None
        while len(self._seen) > self._seen_max:
            self._seen.popitem(last=False)
        for stream, pairs in touched.items():
            self._touched[stream] |= pairs
        if bad:
            self.store.write_rejected(bad)
            for _, topic, _, reason, _ in bad:
                if self.stats.rejected < 20 or self.stats.rejected % 1000 == 0:
                    log.warning("station: refused a message on %s: %s", topic[:120], reason)
                self.stats.rejected += 1
                self.stats.last_reject = f"{topic[:120]}: {reason}"
        self.stats.received += len(batch)
        self.stats.stored += len(good)
