"""Simulated beds for the station: what a painmon device says on MQTT, at its real rates.

Each bed is one MQTT 5 client with the device's client id, retained ``online`` status and
``offline`` last will, and one hop a second: ``vitals``, ``pain`` (with contributions), ``face``
and ``health`` (retained), like ``painmon demo``. Alarms go through the device's own
``AlarmBook`` (events on ``alarm``, the retained ``alarms`` list) and commands through its own
``CommandRouter`` with the device's ``acknowledge`` model, answered on ``cmd/result``. The
payloads are held to the published schemas by the tests.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensors.clock import MonotonicClock

from device.care.pain import PAIN_ALARM, AcknowledgeRequest
from device.processing.alarms import AlarmBook
from device.processing.commands import CARERS, CommandRouter


def iso(unix_s: float) -> str:
    return (datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"))


def level_of(score: float | None) -> str | None:
    if score is None:
        return None
    return "none" if score < 0.5 else "mild" if score < 3.5 else "moderate" if score < 6.5 else "severe"


class SimulatedBed:
    def __init__(self, host: str, port: int, device_id: str, *, prefix: str = "painmon",
                 keepalive_s: int = 5, boot_id: str | None = None, seed: int = 0,
                 username: str | None = None, password: str | None = None) -> None:
        self.device_id, self.prefix = device_id, prefix
        self.boot_id = boot_id or f"{device_id[-8:]}-{int(time.time() * 1000) % 10**9}"
        self.host, self.port, self.keepalive_s = host, port, keepalive_s
        self.phase = (seed * 0.61803) % 1.0
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.published: list[tuple[str, int, float]] = []  # (subtopic, seq, publish unix s)
        self.results: list[dict] = []
        self.book = AlarmBook(MonotonicClock(), id_prefix=f"{device_id}-")
        self.book.listeners.append(self._on_alarm)
        self.router = CommandRouter(MonotonicClock())
        self.router.register("acknowledge", AcknowledgeRequest, self._acknowledge,
                             'Acknowledge an alarm by id, or "all".', roles=CARERS, urgent=True)
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"painmon-{device_id}", protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.1, 1.0)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.will_set(self.topic("status"), self._status("offline"), qos=1, retain=True)

    # -- wire ----------------------------------------------------------------------------------
    def topic(self, subtopic: str) -> str:
        return f"{self.prefix}/{self.device_id}/{subtopic}"

    def envelope(self, schema: str, t_unix_s: float | None = None) -> dict:
        with self._lock:
            seq = next(self._seq)
        return {"schema": schema, "device_id": self.device_id, "boot_id": self.boot_id,
                "seq": seq, "t": iso(time.time() if t_unix_s is None else t_unix_s),
                "t_synced": True}

    def _status(self, state: str) -> str:
        body = {"schema": "painmon.status/1", "device_id": self.device_id,
                "boot_id": self.boot_id, "state": state}
        if state == "online":
            body.update(t=iso(time.time()), sw_version="0.1.0",
                        outbox={"pending": 0, "evicted": 0, "max_entries": 50000})
        return json.dumps(body)

    def send(self, subtopic: str, body: dict, retain: bool = False) -> mqtt.MQTTMessageInfo:
        at = time.time()
        info = self.client.publish(self.topic(subtopic), json.dumps(body, separators=(",", ":")),
                                   qos=1, retain=retain)
        if "seq" in body:
            self.published.append((subtopic, body["seq"], at))
        return info

    def start(self, timeout_s: float = 10.0) -> SimulatedBed:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        self.client.connect(self.host, self.port, keepalive=self.keepalive_s, clean_start=False,
                            properties=props)
        self.client.loop_start()
        if not self.connected.wait(timeout_s):
            raise RuntimeError(f"{self.device_id}: no connection to {self.host}:{self.port}")
        return self

    def _on_connect(self, client, _userdata, _flags, reason, _props) -> None:
        if reason.is_failure:
            return
        client.subscribe(self.topic("cmd/+/+"), qos=1)  # cmd/<role>/<name>, as the device
        client.publish(self.topic("status"), self._status("online"), qos=1, retain=True)
        self._publish_alarms()
        self.connected.set()

    def _on_message(self, _client, _userdata, message) -> None:
        role, name = message.topic.split("/")[-2:]
        result = self.router.handle(name, bytes(message.payload), role=role)
        self.results.append(result)
        self.send("cmd/result", {**self.envelope(result["schema"]), **result})

    def stop(self) -> None:
        """A clean stop: ``offline`` published, then DISCONNECT."""
        self.client.publish(self.topic("status"), self._status("offline"), qos=1,
                            retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def vanish(self) -> None:
        """Power loss: the network thread stops and nothing more is sent, not even a
        DISCONNECT; the broker sends the last will once 1.5 keep-alives pass in silence."""
        self.client.loop_stop()

    # -- the hop -------------------------------------------------------------------------------
    def score_at(self, t_unix_s: float) -> float:
        return round(2.0 + 1.5 * math.sin(2 * math.pi * (t_unix_s / 600.0 + self.phase)), 2)

    def hop(self, score: float | None = None, t_unix_s: float | None = None,
            face: bool = True, health: bool = True) -> list[mqtt.MQTTMessageInfo]:
        """One second's messages; the score follows a slow wave unless given."""
        now = time.time() if t_unix_s is None else t_unix_s
        score = self.score_at(now) if score is None else score
        hr = round(70 + 4 * score + 2 * math.sin(now / 7.0), 1)
        eda = round(2.0 + 0.3 * score, 3)
        infos = [self.send("vitals", {
            **self.envelope("painmon.vitals/1", now), "hr_bpm": {"ppg": hr, "ecg": hr},
            "eda_us": eda, "motion_g": 0.01,
            "quality": {"ppg": 0.9, "ecg": 0.95, "eda": 0.9, "accel": 1.0},
            "heart_rate": {"bpm": hr, "quality": 0.9, "source": "ecg"},
            "physio": {"state": "ok", "score": score, "confidence": 0.6, "quality": 0.9,
                       "features": {"hr_delta_bpm": 4 * score}, "flags": []},
            "sensors": {"ppg": {"state": "ok"}, "adc": {"state": "ok"}, "accel": {"state": "ok"}},
        })]
        if face:
            infos.append(self.send("face", {
                **self.envelope("painmon.face/1", now), "modality": "face", "score": score,
                "confidence": 0.7, "quality": 0.9, "features": {"pspi": score * 1.2},
                "flags": [], "camera": {"state": "ok"}}))
        infos.append(self.send("pain", {
            **self.envelope("painmon.pain/1", now), "score": score, "raw_score": score,
            "level": level_of(score), "confidence": 0.72,
            "contributions": {
                "physio": {"weight": 0.6, "score": score, "confidence": 0.6,
                           "top_features": {"hr_delta_bpm": 0.4, "scr_rate_per_min": 0.2}},
                "face": {"weight": 0.4, "score": score, "confidence": 0.7,
                         "top_features": {"pspi": 0.5, "negative_affect": 0.1}}},
            "flags": [], "personalised": False, "calibrated": True}))
        if health:
            infos.append(self.send("health", {
                **self.envelope("painmon.health/1", now),
                "sensors": {"ppg": {"state": "ok"}, "adc": {"state": "ok"}},
                "modalities": {"physio": {"state": "ok"}, "face": {"state": "ok"}},
                "queue": {"dropped_blocks": 0}, "readers": {"i2c-1": {"alive": True, "restarts": 0}},
                "alarms": [{"kind": a.kind, "source": a.source} for a in self.book.active()
                           if a.category == "technical"]}, retain=True))
        return infos

    # -- alarms and commands ---------------------------------------------------------------------
    def raise_pain_alarm(self, score: float = 8.0):
        return self.book.raise_alarm(*PAIN_ALARM, category="physiological", priority="medium",
                                     message=f"pain score {score:.1f} held high",
                                     escalate_after_s=120)

    def clear_pain_alarm(self):
        return self.book.clear(*PAIN_ALARM)

    def _acknowledge(self, request: AcknowledgeRequest) -> dict:
        if request.alarm_id == "all":
            done = self.book.acknowledge_all(request.by)
        else:
            alarm = self.book.acknowledge(request.alarm_id, request.by)
            done = [] if alarm is None else [alarm]
        if request.alarm_id != "all" and not done:
            from device.processing.commands import CommandRefused

            raise CommandRefused(f"no active alarm {request.alarm_id!r}")
        return {"acknowledged": [a.id for a in done]}

    def _on_alarm(self, event: str, alarm) -> None:
        self.send("alarm", {**self.envelope("painmon.alarm/1"), "event": event,
                            **alarm.to_dict()})
        self._publish_alarms()

    def _publish_alarms(self) -> None:
        self.send("alarms", {**self.envelope("painmon.alarms/1"),
                             "active": [a.to_dict() for a in self.book.active()],
                             "loudest": self.book.loudest()}, retain=True)
