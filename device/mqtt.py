"""The device's MQTT connection: availability, JSON publishing, command subscriptions.

Availability follows the usual birth/last-will pattern: the broker holds a retained
``offline`` will for ``<prefix>/<device_id>/status`` and publishes it when the device vanishes
(crash, power loss, network); after each accepted CONNECT the device replaces it with a
retained ``online``, and a clean ``stop()`` sets ``offline`` itself.

paho keeps QoS 1/2 messages that are not yet acknowledged in RAM only (bounded here by
``max_queued``); whatever must survive a restart goes through the on-disk outbox instead.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device.config import MqttConfig

log = logging.getLogger(__name__)

STATUS_SCHEMA = "painmon.status/1"
JSON_CONTENT_TYPE = "application/json"

JsonCallback = Callable[[str, dict], None]


def new_boot_id() -> str:
    """A fresh identifier for one run of the device process."""
    return uuid.uuid4().hex[:16]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MqttLink:
    """One device's connection to its broker.

    ``start()`` connects in the background and keeps reconnecting with exponential backoff
    (``reconnect_min_s`` doubling up to ``reconnect_max_s``); ``connected`` is true only after
    the broker accepted the CONNECT. Use as a context manager, or call ``start``/``stop``.
    """

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        boot_id: str | None = None,
        *,
        max_queued: int = 1000,
    ) -> None:
        self.config = config
        self.device_id = device_id
        self.boot_id = boot_id or new_boot_id()
        self.client_id = config.client_id or f"painmon-{device_id}"
        self.base_topic = f"{config.topic_prefix}/{device_id}"
        self.status_topic = self.topic("status")
        self._v5 = config.protocol == "5"
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._subscriptions: dict[str, tuple[JsonCallback, int]] = {}
        self._started = False
        self._stopped = False
        self.last_connect_reason: str | None = None
        self.published = 0  # handed to paho (sent, or queued in RAM for QoS >= 1)
        self.failed = 0  # not taken: QoS 0 while disconnected, queue full, not JSON
        self.acknowledged = 0  # on_publish: PUBACK/PUBCOMP, or written out at QoS 0
        self.connects = 0
        self.refused = 0
        self.disconnects = 0

        self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            reconnect_on_failure=True,
        )
        self._client.max_queued_messages_set(max_queued)
        self._client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.will_set(
            self.status_topic,
            self._status_payload("offline"),
            qos=1,
            retain=True,
            properties=self._json_properties(PacketTypes.WILLMESSAGE),
        )

    # -- topics and payloads ------------------------------------------------------------

    def topic(self, subtopic: str) -> str:
        """``<prefix>/<device_id>/<subtopic>``."""
        if not subtopic or "+" in subtopic or "#" in subtopic:
            raise ValueError(f"subtopic must be a plain topic, got {subtopic!r}")
        return f"{self.base_topic}/{subtopic}"

    def _status_payload(self, state: str, **extra: Any) -> bytes:
        body = {"schema": STATUS_SCHEMA, "device_id": self.device_id, "boot_id": self.boot_id,
                "state": state, **extra}
        return json.dumps(body, separators=(",", ":")).encode()

    def _json_properties(self, packet_type: int,
                         expiry_s: float | None = None) -> Properties | None:
        if not self._v5:
            return None
        props = Properties(packet_type)
        props.ContentType = JSON_CONTENT_TYPE
        if expiry_s is not None:
            props.MessageExpiryInterval = max(1, round(expiry_s))
        return props

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def start(self) -> Self:
        """Connect in the background; returns at once. Idempotent."""
        with self._lock:
            if self._started:
                return self
            self._started = True
        log.info("MQTT: connecting to %s:%d as %s (MQTT %s)", self.config.host, self.config.port,
                 self.client_id, self.config.protocol)
        self._client.connect_async(self.config.host, self.config.port,
                                   keepalive=self.config.keepalive_s)
        self._client.loop_start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Publish a retained ``offline``, disconnect and stop the network thread. Idempotent."""
        with self._lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
        if self.connected:
            info = self._client.publish(
                self.status_topic, self._status_payload("offline", t=utc_now_iso()), qos=1,
                retain=True, properties=self._json_properties(PacketTypes.PUBLISH))
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("MQTT: offline status not confirmed: %s", exc)
        # A normal DISCONNECT makes the broker discard the will.
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- publish / subscribe -----------------------------------------------------------

    def publish_json(
        self,
        subtopic: str,
        payload: dict,
        *,
        qos: int | None = None,
        retain: bool = False,
        expiry_s: float | None = None,
    ) -> bool:
        """Publish ``payload`` as JSON under the device's topic; True if paho took it.

        QoS 0 while disconnected is dropped; QoS 1/2 is queued (in RAM) until reconnect.
        ``expiry_s`` sets the MQTT v5 message expiry, so a stale estimate is not delivered.
        """
        qos = self.config.qos if qos is None else qos
        topic = self.topic(subtopic)
        try:
            body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            log.error("MQTT: %s: payload is not JSON: %s", topic, exc)
            self.failed += 1
            return False
        info = self._client.publish(topic, body, qos=qos, retain=retain,
                                    properties=self._json_properties(PacketTypes.PUBLISH, expiry_s))
        handed = info.rc == mqtt.MQTT_ERR_SUCCESS or (
            info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0)
        if handed:
            self.published += 1
        else:
            self.failed += 1
            log.debug("MQTT: %s not published: %s", topic, mqtt.error_string(info.rc))
        return handed

    def subscribe_json(self, subtopic: str, callback: JsonCallback, *, qos: int = 1) -> None:
        """Call ``callback(topic, payload_dict)`` for each JSON message on the device's
        ``subtopic`` (wildcards allowed here); subscriptions are renewed on every connect."""
        topic_filter = f"{self.base_topic}/{subtopic}"

        def deliver(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
            try:
                body = json.loads(message.payload)
            except ValueError as exc:
                log.warning("MQTT: %s: ignored, not JSON: %s", message.topic, exc)
                return
            if not isinstance(body, dict):
                log.warning("MQTT: %s: ignored, not a JSON object", message.topic)
                return
            try:
                callback(message.topic, body)
            except Exception:
                log.exception("MQTT: handler for %s failed", message.topic)

        self._client.message_callback_add(topic_filter, deliver)
        self._subscriptions[topic_filter] = (callback, qos)
        if self.connected:
            self._client.subscribe(topic_filter, qos=qos)

    def stats(self) -> dict[str, int]:
        return {"published": self.published, "failed": self.failed,
                "acknowledged": self.acknowledged, "connects": self.connects,
                "refused": self.refused, "disconnects": self.disconnects}

    # -- paho callbacks (network thread) ------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason: Any, _properties: Any) -> None:
        self.last_connect_reason = str(reason)
        if reason.is_failure:
            self.refused += 1
            log.error("MQTT: %s:%d refused the connection: %s", self.config.host,
                      self.config.port, reason)
            return
        self.connects += 1
        self._connected.set()
        log.info("MQTT: connected to %s:%d", self.config.host, self.config.port)
        client.publish(self.status_topic, self._status_payload("online", t=utc_now_iso()),
                       qos=1, retain=True, properties=self._json_properties(PacketTypes.PUBLISH))
        for topic_filter, (_, qos) in self._subscriptions.items():
            client.subscribe(topic_filter, qos=qos)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason: Any, _properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected:
            self.disconnects += 1
            if self._stopped:
                log.info("MQTT: disconnected")
            else:
                log.warning("MQTT: connection lost (%s); reconnecting", reason)

    def _on_publish(self, *_args: Any) -> None:
        self.acknowledged += 1
