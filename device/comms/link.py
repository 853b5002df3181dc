"""The device's MQTT connection: availability, security, JSON publishing, subscriptions.

Availability follows the usual birth/last-will pattern: the broker holds a retained
``offline`` will for ``<prefix>/<device_id>/status`` and publishes it when the device vanishes
(crash, power loss, network) and has not come back within the MQTT 5 will delay; after each
accepted CONNECT the device replaces it with a retained ``online``, and a clean ``stop()`` sets
``offline`` itself.

The session is persistent (``clean_start`` false with a session expiry): the broker keeps the
command subscription and queues QoS 1 commands while the device is briefly away.

paho keeps QoS 1/2 messages that are not yet acknowledged in RAM only (bounded here by
``max_queued``); whatever must survive a restart goes through the on-disk outbox
(``device/comms/outbox.py``), which listens to ``ack_listeners`` to learn what the broker took.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from device.config import MqttConfig
from device.processing.envelope import new_boot_id, utc_iso

log = logging.getLogger(__name__)

STATUS_SCHEMA = "painmon.status/1"
JSON_CONTENT_TYPE = "application/json"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"

JsonCallback = Callable[[str, dict], None]
RawCallback = Callable[[str, bytes], None]


class MqttCredentialError(Exception):
    """The broker password could not be read; the message names the file, never the content."""


def read_password(config: MqttConfig) -> str | None:
    """The broker password from ``password_file`` or the systemd credential, else None.

    systemd's ``LoadCredential=name:/path`` places the secret in ``$CREDENTIALS_DIRECTORY/name``,
    readable only by the service; only the first line counts (editors add a newline).
    """
    if config.password_file is not None:
        path = Path(config.password_file)
    elif config.password_credential is not None:
        directory = os.environ.get(CREDENTIALS_ENV)
        if not directory:
            raise MqttCredentialError(
                f"mqtt.password_credential {config.password_credential!r}: ${CREDENTIALS_ENV} is "
                "not set (start the service with LoadCredential=)")
        path = Path(directory) / config.password_credential
    else:
        return None
    try:
        # A regular file only, and only its start: /dev/zero as a password file must not hang.
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise MqttCredentialError(f"the MQTT password file {path} is not a regular file")
            text = f.read(4096).decode("utf-8")
    except OSError as exc:
        raise MqttCredentialError(f"cannot read the MQTT password from {path}: "
                                  f"{exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise MqttCredentialError(f"the MQTT password file {path} is not UTF-8 text") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise MqttCredentialError(f"the MQTT password file {path} is empty")
    return password


class MqttLink:
    """One device's connection to its broker.

    ``start()`` connects in the background and keeps reconnecting with exponential backoff
    (``reconnect_min_s`` doubling up to ``reconnect_max_s``); ``connected`` is true only after
    the broker accepted the CONNECT. Use as a context manager, or call ``start``/``stop``.
    ``status_fields`` adds fields to the status message (e.g. the outbox's counters).
    """

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        boot_id: str | None = None,
        *,
        max_queued: int = 1000,
        status_fields: Callable[[], dict] | None = None,
    ) -> None:
        self.config = config
        self.device_id = device_id
        self.boot_id = boot_id or new_boot_id()
        self.client_id = config.client_id_for(device_id)
        self.base_topic = f"{config.topic_prefix}/{device_id}"
        self.status_topic = self.topic("status")
        self.status_fields = status_fields
        self._v5 = config.protocol == "5"
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._subscriptions: dict[str, tuple[int, SubscribeOptions | None]] = {}
        self._started = False
        self._stopped = False
        #: Called on paho's network thread after each accepted CONNECT (session_present).
        self.connect_listeners: list[Callable[[bool], None]] = []
        #: Called on paho's network thread with the mid of each acknowledged publish.
        self.ack_listeners: list[Callable[[int], None]] = []
        self.last_connect_reason: str | None = None
        self.session_present = False
        self.published = 0  # handed to paho (sent, or queued in RAM for QoS >= 1)
        self.failed = 0  # not taken: QoS 0 while disconnected, queue full, not JSON
        self.acknowledged = 0  # on_publish: PUBACK/PUBCOMP, or written out at QoS 0
        self.rejected = 0  # PUBACK with a failure reason (MQTT 5), e.g. not authorized
        self.connects = 0
        self.refused = 0
        self.disconnects = 0

        if self._v5:
            self._client = mqtt.Client(
                callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                client_id=self.client_id, protocol=mqtt.MQTTv5, reconnect_on_failure=True)
        else:
            self._client = mqtt.Client(
                callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                client_id=self.client_id, protocol=mqtt.MQTTv311, reconnect_on_failure=True,
                clean_session=config.session_expiry_s == 0)
        self._client.max_queued_messages_set(max_queued)
        self._client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_connect_fail = self._on_connect_fail
        self._last_failure: str | None = None
        self._configure_security()
        will_props = self._properties(PacketTypes.WILLMESSAGE, schema=STATUS_SCHEMA)
        if will_props is not None and config.will_delay_s:
            will_props.WillDelayInterval = config.will_delay_s
        self._client.will_set(self.status_topic, self._status_payload("offline"), qos=1,
                              retain=True, properties=will_props)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return (f"MqttLink({self.device_id!r}, {self.config.host}:{self.config.port}, "
                f"tls={self.config.tls.enabled}, user={self.config.username!r}, {state})")

    def _configure_security(self) -> None:
        tls = self.config.tls
        if tls.enabled:
            context = ssl.create_default_context(
                cafile=str(tls.ca_file) if tls.ca_file else None)
            if tls.cert_file is not None:
                context.load_cert_chain(str(tls.cert_file),
                                        str(tls.key_file) if tls.key_file else None)
            self._client.tls_set_context(context)
        if self.config.username is not None:
            # The password lives only inside paho's client; it is never logged or repr'd.
            self._client.username_pw_set(self.config.username, read_password(self.config))

    # -- topics and payloads ------------------------------------------------------------

    def topic(self, subtopic: str) -> str:
        """``<prefix>/<device_id>/<subtopic>``."""
        if not subtopic or "+" in subtopic or "#" in subtopic:
            raise ValueError(f"subtopic must be a plain topic, got {subtopic!r}")
        return f"{self.base_topic}/{subtopic}"

    def status_message(self, state: str, **extra: Any) -> dict:
        body = {"schema": STATUS_SCHEMA, "device_id": self.device_id, "boot_id": self.boot_id,
                "state": state, **extra}
        if self.status_fields is not None and state == "online":
            try:
                body.update(self.status_fields())
            except Exception:
                log.exception("MQTT: status fields unavailable")
        return body

    def _status_payload(self, state: str, **extra: Any) -> bytes:
        return json.dumps(self.status_message(state, **extra), separators=(",", ":")).encode()

    def _properties(self, packet_type: int, *, expiry_s: float | None = None,
                    content_type: str = JSON_CONTENT_TYPE, schema: str | None = None,
                    user_properties: Mapping[str, str] | None = None) -> Properties | None:
        if not self._v5:
            return None
        props = Properties(packet_type)
        props.ContentType = content_type
        if expiry_s is not None:
            props.MessageExpiryInterval = max(1, round(expiry_s))
        pairs = ([("schema", schema)] if schema else []) + list((user_properties or {}).items())
        if pairs:
            props.UserProperty = pairs
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
        log.info("MQTT: connecting to %s:%d as %s (MQTT %s%s)", self.config.host,
                 self.config.port, self.client_id, self.config.protocol,
                 ", TLS" if self.config.tls.enabled else "")
        connect_props = None
        clean_start: bool | int = mqtt.MQTT_CLEAN_START_FIRST_ONLY
        if self._v5:
            clean_start = self.config.session_expiry_s == 0
            connect_props = Properties(PacketTypes.CONNECT)
            connect_props.SessionExpiryInterval = self.config.session_expiry_s
            # The broker sends nothing larger (it drops it for us): a huge command can never
            # reach the device's memory, let alone kill it at every redelivery.
            connect_props.MaximumPacketSize = self.config.max_packet_bytes
        self._client.connect_async(self.config.host, self.config.port,
                                   keepalive=self.config.keepalive_s, clean_start=clean_start,
                                   properties=connect_props)
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
                self.status_topic, self._status_payload("offline", t=utc_iso()), qos=1,
                retain=True, properties=self._properties(PacketTypes.PUBLISH,
                                                         schema=STATUS_SCHEMA))
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

    def publish_raw(self, topic: str, body: bytes, *, qos: int, retain: bool = False,
                    expiry_s: float | None = None, content_type: str = JSON_CONTENT_TYPE,
                    schema: str | None = None,
                    user_properties: Mapping[str, str] | None = None) -> mqtt.MQTTMessageInfo:
        """Publish ``body`` on the absolute ``topic``; paho's message info (rc, mid)."""
        info = self._client.publish(topic, body, qos=qos, retain=retain, properties=self._properties(
            PacketTypes.PUBLISH, expiry_s=expiry_s, content_type=content_type, schema=schema,
            user_properties=user_properties))
        handed = info.rc == mqtt.MQTT_ERR_SUCCESS or (
            info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0)
        if handed:
            self.published += 1
        else:
            self.failed += 1
            log.debug("MQTT: %s not published: %s", topic, mqtt.error_string(info.rc))
        return info

    def publish_json(
        self,
        subtopic: str,
        payload: dict | list,
        *,
        qos: int | None = None,
        retain: bool = False,
        expiry_s: float | None = None,
        user_properties: Mapping[str, str] | None = None,
    ) -> bool:
        """Publish ``payload`` as JSON under the device's topic; True if paho took it.

        QoS 0 while disconnected is dropped; QoS 1/2 is queued (in RAM) until reconnect.
        ``expiry_s`` sets the MQTT v5 message expiry, so a stale estimate is not delivered.
        The payload's ``schema`` also travels as a user property, for routing without parsing.
        """
        qos = self.config.qos if qos is None else qos
        topic = self.topic(subtopic)
        try:
            body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            log.error("MQTT: %s: payload is not JSON: %s", topic, exc)
            self.failed += 1
            return False
        schema = payload.get("schema") if isinstance(payload, dict) else None
        info = self.publish_raw(topic, body, qos=qos, retain=retain, expiry_s=expiry_s,
                                schema=schema if isinstance(schema, str) else None,
                                user_properties=user_properties)
        return info.rc == mqtt.MQTT_ERR_SUCCESS or (info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0)

    def wait_backlog(self, most: int, timeout_s: float) -> bool:
        """Wait until at most ``most`` of the messages handed to paho are still unsent or
        unacknowledged; False on timeout or without a connection. A producer faster than the
        network (a stepped replay) calls it to stay within paho's queue (``max_queued``)."""
        deadline = time.monotonic() + timeout_s
        while self.published - self.acknowledged > most:
            if not self.connected or time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def publish_status(self) -> None:
        """Publish the retained ``online`` status again (its fields changed)."""
        if self.connected:
            self._client.publish(self.status_topic, self._status_payload("online", t=utc_iso()),
                                 qos=1, retain=True, properties=self._properties(
                                     PacketTypes.PUBLISH, schema=STATUS_SCHEMA))

    def subscribe_raw(self, topic_filter: str, callback: RawCallback, *, qos: int = 1,
                      options: SubscribeOptions | None = None, with_retain: bool = False) -> None:
        """Call ``callback(topic, payload_bytes)`` for each message on the absolute
        ``topic_filter`` (``callback(topic, payload_bytes, retained)`` with ``with_retain``);
        subscriptions are renewed on every connect."""

        def deliver(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
            try:
                if with_retain:
                    callback(message.topic, bytes(message.payload), bool(message.retain))
                else:
                    callback(message.topic, bytes(message.payload))
            except Exception:
                log.exception("MQTT: handler for %s failed", message.topic)

        self._client.message_callback_add(topic_filter, deliver)
        self._subscriptions[topic_filter] = (qos, options)
        if self.connected:
            self._subscribe(self._client, topic_filter)

    def _subscribe(self, client: mqtt.Client, topic_filter: str) -> None:
        qos, options = self._subscriptions[topic_filter]
        if options is not None:
            client.subscribe(topic_filter, options=options)
        else:
            client.subscribe(topic_filter, qos=qos)

    def stats(self) -> dict[str, int]:
        return {"published": self.published, "failed": self.failed,
                "acknowledged": self.acknowledged, "rejected": self.rejected,
                "connects": self.connects, "refused": self.refused,
                "disconnects": self.disconnects}

    # -- paho callbacks (network thread) ------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any,
                    reason: Any, _properties: Any) -> None:
        self.last_connect_reason = str(reason)
        if reason.is_failure:
            self.refused += 1
            self._log_failure(f"refused the connection: {reason}")
            return
        self._last_failure = None
        self.connects += 1
        self.session_present = bool(getattr(flags, "session_present", False))
        log.info("MQTT: connected to %s:%d (session %s)", self.config.host, self.config.port,
                 "resumed" if self.session_present else "new")
        client.publish(self.status_topic, self._status_payload("online", t=utc_iso()),
                       qos=1, retain=True,
                       properties=self._properties(PacketTypes.PUBLISH, schema=STATUS_SCHEMA))
        for topic_filter in list(self._subscriptions):
            self._subscribe(client, topic_filter)
        # Connected only now: whoever waited for it finds the retained online already sent.
        self._connected.set()
        for listener in list(self.connect_listeners):
            try:
                listener(self.session_present)
            except Exception:
                log.exception("MQTT: connect listener %r failed", listener)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho calls this inside its ``except OSError``: the exception is the reason (refused,
        # unreachable, a certificate for another host...), which paho itself only logs at debug.
        exc = sys.exc_info()[1]
        self.last_connect_reason = (f"{type(exc).__name__}: {exc}" if exc is not None
                                    else "connection failed")
        self.refused += 1
        self._log_failure(f"connection failed: {self.last_connect_reason}")

    def _log_failure(self, what: str) -> None:
        """Every failure is counted; a new reason is logged as an error, a repeat at debug
        (the backoff retries every reconnect_max_s for as long as it lasts)."""
        level = logging.DEBUG if what == self._last_failure else logging.ERROR
        self._last_failure = what
        log.log(level, "MQTT: %s:%d %s", self.config.host, self.config.port, what)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason: Any, _properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if not was_connected and not self._stopped:
            # Closed before CONNACK: TLS accepted, then the broker hung up (e.g. a client id
            # or protocol it will not take).
            self._log_failure(f"closed the connection before accepting it: {reason}")
        if was_connected:
            self.disconnects += 1
            if self._stopped:
                log.info("MQTT: disconnected")
            else:
                log.warning("MQTT: connection lost (%s); reconnecting", reason)

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason: Any,
                    _properties: Any) -> None:
        self.acknowledged += 1
        if getattr(reason, "is_failure", False):
            # The broker took the message and refused it (ACL, quota): resending cannot help.
            self.rejected += 1
            log.error("MQTT: broker refused message %d: %s", mid, reason)
        for listener in list(self.ack_listeners):
            try:
                listener(mid)
            except Exception:
                log.exception("MQTT: ack listener %r failed", listener)
