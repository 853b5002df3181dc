"""How the pipeline's messages reach MQTT: which wait in the outbox, which expire, which stay.

- ``OUTBOX_TOPICS`` (pain estimates, alarm events, command results) are stored on disk first
  and sent in order until acknowledged (``device/outbox.py``).
- ``LIVE_TOPICS`` (vitals, face) carry an MQTT 5 message expiry and are not sent while the
  link is down: a stale heart rate is worth nothing.
- ``STATE_TOPICS`` (the active alarms, health) are retained; the latest of each is published
  again after every reconnect, as are the status and the Home Assistant discovery configs.

Commands arrive on ``cmd/<name>`` and are answered by the pipeline's ``CommandRouter`` on a
thread of their own (a slow handler must not stall paho's network thread); each result goes
out on ``cmd/result`` through the outbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from paho.mqtt.subscribeoptions import SubscribeOptions

from device.homeassistant import discovery_messages, is_birth
from device.mqtt import MqttLink
from device.outbox import Outbox, OutboxSender, outbox_path
from device.senml import CONTENT_TYPE as SENML_CONTENT_TYPE
from device.senml import to_senml

log = logging.getLogger(__name__)

OUTBOX_TOPICS = frozenset({"pain", "alarm", "cmd/result"})
LIVE_TOPICS = frozenset({"vitals", "face"})
STATE_TOPICS = frozenset({"alarms", "health"})
ALARMS_SCHEMA = "painmon.alarms/1"
COMMAND_QUEUE = 256


def sw_version() -> str:
    from device.version import painmon_version

    return painmon_version()


def model_versions(paths: list[Path]) -> str:
    """``name@sha256-prefix`` of each model file that exists, comma separated."""
    out = []
    for path in paths:
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        except OSError:
            continue
        out.append(f"{path.stem}@{digest}")
    return ",".join(out)


class MqttOutput:
    """The pipeline output (a callable ``(topic, message)``) that publishes over ``link``."""

    def __init__(self, config, link: MqttLink, *, models: str = "") -> None:
        self.config = config
        self.link = link
        self.mqtt = config.mqtt
        self.outbox = Outbox(outbox_path(config.state_dir, config.device_id),
                             self.mqtt.outbox_max_entries)
        self.sender = OutboxSender(self.outbox, link, qos=self.mqtt.qos,
                                   on_evicted=self._on_evicted)
        self.user_properties = {"sw_version": sw_version()}
        if models:
            self.user_properties["models"] = models
        self.latest: dict[str, dict] = {}
        self.dropped_offline = 0
        self.discovery_published = 0
        self._status_published_s = 0.0
        self._commands: queue.Queue = queue.Queue(COMMAND_QUEUE)
        self._command_thread: threading.Thread | None = None
        self._router = None
        self._pipeline = None
        link.status_fields = self.status_fields
        link.connect_listeners.append(self._on_connect)
        if self.mqtt.ha_discovery:
            link.subscribe_raw(f"{self.mqtt.ha_discovery_prefix}/status", self._on_ha_status)
        if link.connected:  # wired after the link came up: do what its connect would have
            link.publish_status()
            self._on_connect(link.session_present)

    # -- wiring ------------------------------------------------------------------------------
    def attach(self, pipeline) -> MqttOutput:
        """Serve the pipeline's commands and publish its active alarms as retained state."""
        self._pipeline = pipeline
        self._router = pipeline.commands
        pipeline.alarms.listeners.append(lambda _event, _alarm: self.publish_alarms())
        # No Local (MQTT 5): the device's own results on cmd/result do not come back to it.
        options = SubscribeOptions(qos=1, noLocal=True) if self.mqtt.protocol == "5" else None
        self.link.subscribe_raw(f"{self.link.base_topic}/cmd/+", self._on_command_message,
                                qos=1, options=options)
        self._command_thread = threading.Thread(target=self._serve_commands, name="commands",
                                                daemon=True)
        self._command_thread.start()
        self.publish_alarms()
        return self

    def start(self) -> MqttOutput:
        self.sender.start()
        return self

    def stop(self, drain_s: float = 2.0) -> None:
        """Give the outbox a moment to empty; what stays waits on disk for the next start."""
        if self.link.connected:
            self.sender.wait_idle(drain_s)
        if self._command_thread is not None:
            self._commands.put(None)
            self._command_thread.join(2.0)
        self.sender.stop()
        self.outbox.close()

    def status_fields(self) -> dict:
        return {"sw_version": self.user_properties["sw_version"], "outbox": self.outbox.stats()}

    # -- the output --------------------------------------------------------------------------
    def __call__(self, topic: str, message: dict) -> None:
        if topic in OUTBOX_TOPICS:
            self.sender.send(self.link.topic(topic), message)
        elif topic in STATE_TOPICS:
            self.latest[topic] = message
            self._publish_now(topic, message, retain=True)
        else:
            expiry_s = self.mqtt.live_expiry_s if topic in LIVE_TOPICS else None
            if topic in LIVE_TOPICS and not self.link.connected:
                self.dropped_offline += 1
            else:
                self._publish_now(topic, message, expiry_s=expiry_s)
        if self.mqtt.senml and topic in ("vitals", "pain"):
            pack = to_senml(self.config.device_id, topic, message)
            if pack is not None and self.link.connected:
                self._publish_senml(pack)

    def _publish_now(self, topic: str, message: dict, *, retain: bool = False,
                     expiry_s: float | None = None) -> None:
        self.link.publish_json(topic, message, retain=retain, expiry_s=expiry_s,
                               user_properties=self.user_properties)

    def _publish_senml(self, pack: list[dict]) -> None:
        self.link.publish_raw(self.link.topic("senml"), json.dumps(pack).encode(),
                              qos=self.mqtt.qos, expiry_s=self.mqtt.live_expiry_s,
                              content_type=SENML_CONTENT_TYPE, schema="senml/rfc8428",
                              user_properties=self.user_properties)

    def publish_alarms(self) -> None:
        """The retained summary of the active alarms (what the alarm binary sensor reads)."""
        if self._pipeline is None:
            return
        book = self._pipeline.alarms
        message = self._pipeline.envelope(ALARMS_SCHEMA)
        message["active"] = [
            {k: v for k, v in a.to_dict().items()
             if k in ("alarm_id", "kind", "source", "category", "priority", "state", "message",
                      "raised_t")}
            for a in book.active()]
        message["loudest"] = book.loudest()
        self("alarms", message)

    def publish_discovery(self) -> int:
        count = 0
        for topic, payload in discovery_messages(
                device_id=self.config.device_id, base_topic=self.link.base_topic,
                discovery_prefix=self.mqtt.ha_discovery_prefix,
                sw_version=self.user_properties["sw_version"]):
            self.link.publish_raw(topic, json.dumps(payload).encode(), qos=1, retain=True)
            count += 1
        self.discovery_published += 1
        return count

    # -- callbacks ----------------------------------------------------------------------------
    def _on_connect(self, _session_present: bool) -> None:
        for topic, message in list(self.latest.items()):
            self._publish_now(topic, message, retain=True)
        if self.mqtt.ha_discovery:
            self.publish_discovery()

    def _on_ha_status(self, _topic: str, payload: bytes) -> None:
        if is_birth(payload):
            log.info("Home Assistant is online: publishing discovery again")
            self.publish_discovery()

    def _on_evicted(self, evicted: int) -> None:
        # Reported in the retained status, at most every 10 s: eviction comes in floods.
        now = time.monotonic()
        if now - self._status_published_s >= 10.0:
            self._status_published_s = now
            self.link.publish_status()

    def _on_command_message(self, topic: str, payload: bytes) -> None:
        name = topic.rsplit("/", 1)[-1]
        if name == "result":  # our own answers (MQTT 3.1.1 has no no-local option)
            return
        try:
            self._commands.put_nowait((name, payload))
        except queue.Full:
            self._answer(self._router._result(name, None, ok=False,
                                              reason="busy: too many commands waiting"))

    def _serve_commands(self) -> None:
        while True:
            item = self._commands.get()
            if item is None:
                return
            name, payload = item
            self._answer(self._router.handle(name, payload))

    def _answer(self, result: dict[str, Any]) -> None:
        message = self._pipeline.envelope(result["schema"])
        message.update(result)
        self("cmd/result", message)
