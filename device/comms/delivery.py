"""How the pipeline's messages reach MQTT: which wait in the outbox, which expire, which stay.

- ``OUTBOX_TOPICS`` (pain estimates, scale scores, alarm events, command results) are stored
  on disk first and sent in order until acknowledged (``device/comms/outbox.py``,
  ``device/comms/sender.py``).
- ``LIVE_TOPICS`` (vitals, face) carry an MQTT 5 message expiry and are not sent while the
  link is down: a stale heart rate is worth nothing.
- ``STATE_TOPICS`` (the active alarms, health) are retained; the latest of each is published
  again after every reconnect, as are the status and the Home Assistant discovery configs.
- ``ha`` is the state Home Assistant reads, at its own pace (``device/comms/ha_state.py``).

Commands arrive on ``cmd/<role>/<name>`` (the role level is what the broker's ACL lets a user
write) and are answered by the device's ``CommandRouter`` on a thread of their own (a slow
handler must not stall paho's network thread); urgent ones (acknowledge, ping) are served
first; each result goes out on ``cmd/result`` through the outbox. A retained command is
refused and cleared; the subscription asks the broker not to send retained ones at all. The
command thread is supervised: a failure while answering is logged and the thread goes on (or
is started again).

When the state directory refuses the outbox (disk full, I/O error), the ``storage_failed``
technical alarm is raised with the real cause, and ``storage_health`` (free space, what is
pending and held in memory, the oldest pending) goes into the health message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from paho.mqtt.subscribeoptions import SubscribeOptions

from sensors.clock import Clock, MonotonicClock

from device.comms.ha_state import HomeAssistantState
from device.comms.homeassistant import HA_SUBTOPIC, discovery_messages, is_birth
from device.comms.link import MqttLink
from device.comms.outbox import Outbox, outbox_path
from device.comms.sender import HELD_MAX, OutboxSender
from device.comms.senml import CONTENT_TYPE as SENML_CONTENT_TYPE
from device.comms.senml import to_senml
from device.config import PainmonConfig
from device.config.version import painmon_version
from device.processing.alarms import AlarmBook
from device.processing.command_input import peek_request_id
from device.processing.commands import ROLES, CommandRouter
from device.processing.envelope import Envelope
from device.processing.state_files import alarm_reporter

log = logging.getLogger(__name__)

OUTBOX_TOPICS = frozenset({"pain", "scale", "alarm", "cmd/result"})
LIVE_TOPICS = frozenset({"vitals", "face"})
STATE_TOPICS = frozenset({"alarms", "health"})
ALARMS_SCHEMA = "painmon.alarms/1"
COMMAND_QUEUE = 256
#: Refusals for lack of room still to send; beyond this a flood is only counted.
BUSY_QUEUE = 4096
#: Refusals before any handler answered per role and second (sustained, at once); a flood
#: beyond it is counted, not answered: answering it would cost what the flood costs again.
REFUSALS_PER_S, REFUSALS_BURST = 20.0, 50
#: Room kept for urgent commands (acknowledge, ping), apart from the others.
URGENT_QUEUE = 64
STORAGE_ALARM = "storage_failed"


def sw_version() -> str:
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

    def __init__(self, config: PainmonConfig, link: MqttLink, envelope: Envelope, *,
                 alarms: AlarmBook | None = None, commands: CommandRouter | None = None,
                 clock: Clock | None = None, models: str = "") -> None:
        self.config = config
        self.clock = clock or MonotonicClock()  # the monitor's: paces Home Assistant's state
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
        self._urgent: deque = deque()
        self._normal: deque = deque()
        self._busy: deque = deque()
        self.commands_unanswered = 0
        self._refusal_tokens: dict[str, tuple[float, float]] = {}
        self._queued = threading.Condition()
        self._serving = False
        self._command_thread: threading.Thread | None = None
        self.ha_state: HomeAssistantState | None = None
        self.command_thread_restarts = 0
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
        if self.mqtt.ha_discovery:
            self.ha_state = HomeAssistantState(
                self.mqtt.ha_state_every_s, lambda: self.clock.now_ns() / 1e9, self.envelope,
                self._publish_ha_state)
        if self.alarms is not None:
            self.alarms.listeners.append(lambda _event, _alarm: self.publish_alarms())
        if self.commands is not None:
            # MQTT 5: no retained commands at all (retain handling 2), the retain flag as
            # published (so a retained one arriving live is seen and refused), and not our own.
            options = (SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True,
                                        retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
                       if self.mqtt.protocol == "5" else None)
            self.link.subscribe_raw(f"{self.link.base_topic}/cmd/+/+", self._on_command_message,
                                    qos=1, options=options, with_retain=True)
            self._serving = True
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
            with self._queued:
                self._serving = False
                self._queued.notify_all()
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
        if self.ha_state is not None:
            self.ha_state.observe(topic, message)

    def _publish_now(self, topic: str, message: dict, *, retain: bool = False,
                     expiry_s: float | None = None, qos: int | None = None) -> None:
        self.link.publish_json(topic, message, retain=retain, expiry_s=expiry_s, qos=qos,
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
                      "raised_t", "stay")}
            for a in book.active()]
        message["loudest"] = book.loudest()
        self("alarms", message)

    def _publish_ha_state(self, message: dict) -> None:
        # Not queued while offline: the newest state goes out on the next connect instead.
        if self.link.connected:
            self._publish_now(HA_SUBTOPIC, message, retain=True)

    def publish_discovery(self) -> int:
        count = 0
        for topic, payload, retain in discovery_messages(
                device_id=self.config.device_id, base_topic=self.link.base_topic,
                discovery_prefix=self.mqtt.ha_discovery_prefix,
                sw_version=self.user_properties["sw_version"]):
            self.link.publish_raw(topic, payload, qos=1, retain=retain)
            count += 1
        self.discovery_published += 1
        return count

    # -- callbacks ----------------------------------------------------------------------------
    def _on_connect(self, _session_present: bool) -> None:
        for topic, message in list(self.latest.items()):
            self._publish_now(topic, message, retain=True)
        if self.mqtt.ha_discovery:
            self.publish_discovery()
        if self.ha_state is not None:
            self._publish_ha_state(self.ha_state.current())

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

    def _on_command_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        # On paho's network thread: no parsing here, only the topic and the queue.
        role, _, name = topic[len(self.link.base_topic) + len("/cmd/"):].partition("/")
        if retained:
            self._clear_retained(topic)
        urgent = self.commands.is_urgent(name)
        with self._queued:
            waiting = self._urgent if urgent else self._normal
            if len(waiting) < (URGENT_QUEUE if urgent else COMMAND_QUEUE):
                waiting.append((name, payload, role, retained))
            elif len(self._busy) < BUSY_QUEUE:
                # Answered by the command thread, after the urgent ones: this thread (paho's)
                # must keep reading, or the nurse's acknowledge waits behind a flood.
                self._busy.append((name, peek_request_id(payload), role))
            else:
                self.commands_unanswered += 1
            self._queued.notify()
        self._supervise()

    def _clear_retained(self, topic: str) -> None:
        """An empty retained message removes the broker's copy (where the ACL lets us)."""
        log.warning("retained command on %s refused; clearing it", topic)
        self.link.publish_raw(topic, b"", qos=1, retain=True)

    def _start_command_thread(self) -> None:
        self._command_thread = threading.Thread(target=self._serve_commands,
                                                name="commands", daemon=True)
        self._command_thread.start()

    def _supervise(self) -> None:
        """Start the command thread again if it ever ended while serving (it should not:
        every request is answered inside a guard), so that commands are never left unheard."""
        thread = self._command_thread
        if self._serving and thread is not None and not thread.is_alive():
            self.command_thread_restarts += 1
            log.error("command thread had ended; started again")
            self._start_command_thread()

    def _next_command(self) -> tuple | None:
        with self._queued:
            while self._serving and not (self._urgent or self._busy or self._normal):
                self._queued.wait()
            if not self._serving:
                return None
            if self._urgent:
                return self._urgent.popleft()
            if self._busy:
                return self._busy.popleft()
            return self._normal.popleft()

    def _serve_commands(self) -> None:
        while (item := self._next_command()) is not None:
            try:
                if len(item) == 3:  # no room when it came
                    name, request_id, role = item
                    if self._may_refuse(role):
                        self._answer(self.commands.refusal(
                            name, "busy: too many commands waiting", request_id), durable=False)
                    continue
                name, payload, role, retained = item
                if role not in ROLES:
                    result, executed = self.commands.refusal(
                        name, f"send commands on cmd/<role>/<name>, role one of {', '.join(ROLES)}"
                        f" (got {role[:32]!r})", payload=payload), False
                else:
                    result, executed = self.commands.answer(name, payload, role=role,
                                                            retained=retained)
                if executed or self._may_refuse(role):
                    self._answer(result, durable=executed)
            except Exception:  # noqa: BLE001 - the next command must still be served
                log.exception("command %s not answered", name[:64])

    def _may_refuse(self, role: str) -> bool:
        """Whether this role's refusals may still be answered now (a token bucket)."""
        now = time.monotonic()
        tokens, since = self._refusal_tokens.get(role, (REFUSALS_BURST, now))
        tokens = min(REFUSALS_BURST, tokens + (now - since) * REFUSALS_PER_S)
        if tokens < 1.0:
            self._refusal_tokens[role] = (tokens, now)
            self.commands_unanswered += 1
            return False
        self._refusal_tokens[role] = (tokens - 1.0, now)
        return True

    def _answer(self, result: dict[str, Any], *, durable: bool = True) -> None:
        """A result that reached a handler goes through the outbox (kept across an outage);
        a refusal before any handler is sent at once at QoS 0 and not stored: a flood of them
        must not wait in the outbox or paho's in-flight window ahead of the acknowledge that
        follows it."""
        message = self.envelope(result["schema"])
        message.update(result)
        if durable:
            self("cmd/result", message)
        else:
            self._publish_now("cmd/result", message, qos=0)
