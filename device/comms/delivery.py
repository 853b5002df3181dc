"""How the pipeline's messages reach MQTT: which wait in the outbox, which expire, which stay.

- ``OUTBOX_TOPICS`` (pain estimates, alarm events, command results) are stored on disk first
  and sent in order until acknowledged (``device/comms/outbox.py``, ``device/comms/sender.py``).
- ``LIVE_TOPICS`` (vitals, face) carry an MQTT 5 message expiry and are not sent while the
  link is down: a stale heart rate is worth nothing.
- ``STATE_TOPICS`` (the active alarms, health) are retained; the latest of each is published
  again after every reconnect, as are the status and the Home Assistant discovery configs.

Commands arrive on ``cmd/<name>`` and are answered by the device's ``CommandRouter`` on a
thread of their own (a slow handler must not stall paho's network thread); each result goes
out on ``cmd/result`` through the outbox. The command thread is supervised: a failure while
answering is logged and the thread goes on (or is started again), so commands keep being
answered.

When the state directory refuses the outbox (disk full, I/O error), the ``storage_failed``
technical alarm is raised with the real cause, and ``storage_health`` (free space, what is
pending and held in memory, the oldest pending) goes into the health message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import shutil
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from paho.mqtt.subscribeoptions import SubscribeOptions

from device.comms.homeassistant import discovery_messages, is_birth
from device.comms.link import MqttLink
from device.comms.outbox import Outbox, outbox_path
from device.comms.sender import HELD_MAX, OutboxSender
from device.comms.senml import CONTENT_TYPE as SENML_CONTENT_TYPE
from device.comms.senml import to_senml
from device.config import PainmonConfig
from device.processing.alarms import AlarmBook
from device.processing.commands import CommandRouter
from device.processing.envelope import Envelope
from device.processing.state_files import alarm_reporter

log = logging.getLogger(__name__)

OUTBOX_TOPICS = frozenset({"pain", "alarm", "cmd/result"})
LIVE_TOPICS = frozenset({"vitals", "face"})
STATE_TOPICS = frozenset({"alarms", "health"})
ALARMS_SCHEMA = "painmon.alarms/1"
COMMAND_QUEUE = 256
STORAGE_ALARM = "storage_failed"


def sw_version() -> str:
    try:
        return metadata.version("painmon")
    except metadata.PackageNotFoundError:
        return "0+unknown"


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

    def __init__(self, config: PainmonConfig, link: MqttLink, envelope: Envelope, *,
                 alarms: AlarmBook | None = None, commands: CommandRouter | None = None,
                 models: str = "") -> None:
        self.config = config
        self.envelope = envelope
        self.alarms = alarms
        self.commands = commands
        self.link = link
        self.mqtt = config.mqtt
        self.outbox = Outbox(outbox_path(config.state_dir, config.device_id),
                             self.mqtt.outbox_max_entries,
                             on_damaged=alarm_reporter(alarms) if alarms is not None else None)
        self.sender = OutboxSender(self.outbox, link, qos=self.mqtt.qos,
                                   on_evicted=self._on_evicted, on_storage=self._on_storage)
        self.user_properties = {"sw_version": sw_version()}
        if models:
            self.user_properties["models"] = models
        self.latest: dict[str, dict] = {}
        self.dropped_offline = 0
        self.discovery_published = 0
        self._status_published_s = 0.0
        self._commands: queue.Queue = queue.Queue(COMMAND_QUEUE)
        self._command_thread: threading.Thread | None = None
        self._sending = False
        link.status_fields = self.status_fields
        link.connect_listeners.append(self._on_connect)
        if self.mqtt.ha_discovery:
            link.subscribe_raw(f"{self.mqtt.ha_discovery_prefix}/status", self._on_ha_status)
        if link.connected:  # wired after the link came up: do what its connect would have
            link.publish_status()
            self._on_connect(link.session_present)

    # -- life --------------------------------------------------------------------------------
    def start(self) -> MqttOutput:
        """Send the outbox; serve the commands and publish the active alarms as retained
        state, where this output was given them."""
        if self.alarms is not None:
            self.alarms.listeners.append(lambda _event, _alarm: self.publish_alarms())
        if self.commands is not None:
            # No Local (MQTT 5): the device's own results on cmd/result do not come back to it.
            options = (SubscribeOptions(qos=1, noLocal=True) if self.mqtt.protocol == "5"
                       else None)
            self.link.subscribe_raw(f"{self.link.base_topic}/cmd/+", self._on_command_message,
                                    qos=1, options=options)
            self._start_command_thread()
        self.publish_alarms()
        self.sender.start()
        self._sending = True
        return self

    def stop(self, drain_s: float = 2.0) -> None:
        """Give the outbox a moment to empty; what stays waits on disk for the next start."""
        if self.link.connected:
            self.sender.wait_idle(drain_s)
        self._sending = False
        if self._command_thread is not None:
            self._commands.put(None)
            self._command_thread.join(2.0)
        self.sender.stop()
        self.outbox.close()

    def status_fields(self) -> dict:
        stats = self.outbox.stats()
        stats["pending"] += len(self.sender.held)
        stats.update(held_in_memory=len(self.sender.held), lost=self.sender.lost)
        return {"sw_version": self.user_properties["sw_version"], "outbox": stats}

    def storage_health(self) -> dict:
        """The state directory as the health message shows it."""
        out: dict[str, Any] = {"state": "ok" if self.sender.storage_error is None else "failing"}
        if self.sender.storage_error is not None:
            out["reason"] = self.sender.storage_error
        try:
            out["free_bytes"] = shutil.disk_usage(self.outbox.path.parent).free
        except OSError as exc:
            out["free_bytes"] = None
            out.setdefault("reason", f"state directory: {exc}")
        try:
            oldest = self.outbox.oldest_unix_s()
            out["outbox_pending"] = self.outbox.count() + len(self.sender.held)
        except Exception as exc:  # noqa: BLE001 - a broken store is what this reports
            oldest, out["outbox_pending"] = None, None
            out.setdefault("reason", f"outbox: {exc}")
        out["held_in_memory"] = len(self.sender.held)
        out["lost"] = self.sender.lost
        out["oldest_pending_s"] = None if oldest is None else round(time.time() - oldest, 1)
        return out

    # -- the output --------------------------------------------------------------------------
    def __call__(self, topic: str, message: dict) -> None:
        if topic in OUTBOX_TOPICS:
            if self._sending and not self.sender.alive():  # supervised: never silently gone
                log.error("the outbox sender thread had stopped; started again")
                self.sender.start()
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
        if self.alarms is None:
            return
        book = self.alarms
        message = self.envelope(ALARMS_SCHEMA)
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

    def _on_storage(self, reason: str | None) -> None:
        if self.alarms is None:
            return
        if reason is None:
            self.alarms.clear(STORAGE_ALARM, "outbox")
        else:
            self.alarms.raise_alarm(STORAGE_ALARM, "outbox", category="technical",
                                    priority="medium", message=(
                                        f"cannot store in {self.outbox.path.parent}: {reason}; "
                                        f"up to {HELD_MAX} messages kept in memory"))

    def _start_command_thread(self) -> None:
        self._command_thread = threading.Thread(target=self._serve_commands, name="commands",
                                                daemon=True)
        self._command_thread.start()

    def _on_command_message(self, topic: str, payload: bytes) -> None:
        name = topic.rsplit("/", 1)[-1]
        if name == "result":  # our own answers (MQTT 3.1.1 has no no-local option)
            return
        if self._command_thread is not None and not self._command_thread.is_alive():
            log.error("the command thread had stopped; started again")
            self._start_command_thread()
        try:
            self._commands.put_nowait((name, payload))
        except queue.Full:
            self._answer(self.commands.refusal(name, "busy: too many commands waiting"))

    def _serve_commands(self) -> None:
        while True:
            item = self._commands.get()
            if item is None:
                return
            name, payload = item
            try:
                self._answer(self.commands.handle(name, payload))
            except Exception as exc:  # noqa: BLE001 - the next command must be answered too
                log.exception("command %s: answering failed", name[:64])
                try:
                    self._answer(self.commands.refusal(name, f"failed: {exc}"))
                except Exception:  # noqa: BLE001
                    log.exception("command %s: the refusal could not be sent either", name[:64])

    def _answer(self, result: dict[str, Any]) -> None:
        message = self.envelope(result["schema"])
        message.update(result)
        self("cmd/result", message)
