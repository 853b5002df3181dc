"""The demo's console: every message the device publishes, one readable line each."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import TextIO

import paho.mqtt.client as mqtt

from device.config import PainmonConfig


def _fmt(value, spec: str, missing: str = "  --") -> str:
    return missing if value is None else format(value, spec)


def _physio_text(physio: dict) -> str:
    if physio.get("state") != "ok":
        return f"   physio {physio.get('state', '--')}"
    return (f"   physio {_fmt(physio.get('score'), '4.1f')}/10 "
            f"(confidence {physio.get('confidence', 0):.2f})")


def _pain_text(msg: dict) -> str:
    parts = []
    for name, c in (msg.get("contributions") or {}).items():
        top = ", ".join(f"{k} {v:.2f}" for k, v in list((c.get("top_features") or {}).items())[:2])
        parts.append(f"{name} {_fmt(c.get('score'), '4.1f')} x{c.get('weight', 0):.2f}"
                     + (f" ({top})" if top else ""))
    alarm = msg.get("alarm")
    return (f"pain    {_fmt(msg.get('score'), '4.1f')}/10 {msg.get('level') or '--':8} "
            f"confidence {msg.get('confidence', 0):.2f}   " + "   ".join(parts)
            + (f"   ALARM {alarm['alarm_id']} {alarm['priority']} {alarm['state']}" if alarm else "")
            + ("   personalised" if msg.get("personalised") else "")
            + (f"   stay {msg['stay']}" if msg.get("stay") else "")
            + (f"   [{', '.join(msg['flags'])}]" if msg.get("flags") else ""))


def format_message(topic: str, payload: bytes) -> str:
    """One readable line for a message the device published."""
    kind = topic.rsplit("/", 1)[-1]
    try:
        msg = json.loads(payload)
    except ValueError:
        return f"{kind:7} {payload[:80]!r}"
    if kind == "vitals":
        hr = msg.get("hr_bpm") or {}
        q = msg.get("quality") or {}
        sensors = msg.get("sensors") or {}
        down = [f"{n} {s.get('state')}" for n, s in sensors.items() if s.get("state") != "ok"]
        return (f"vitals  #{msg.get('seq', '?'):<4} HR ppg {_fmt(hr.get('ppg'), '5.1f')} "
                f"ecg {_fmt(hr.get('ecg'), '5.1f')} bpm   EDA {_fmt(msg.get('eda_us'), '5.2f')} uS   "
                f"motion {_fmt(msg.get('motion_g'), '5.3f')} g   quality "
                + " ".join(f"{k} {v:.2f}" for k, v in q.items())
                + _physio_text(msg.get("physio") or {})
                + (f"   [{', '.join(down)}]" if down else ""))
    if kind == "face":
        f = msg.get("features") or {}
        camera = msg.get("camera") or {}
        if camera.get("state") != "ok":
            return f"face    camera {camera.get('state')}: {camera.get('reason', '')}"
        if msg.get("score") is None:
            return f"face    no face   flags {','.join(msg.get('flags') or [])}"
        emotions = {k[8:]: v for k, v in f.items() if k.startswith("emotion_") and v is not None}
        top = max(emotions, key=emotions.get) if emotions else "--"
        return (f"face    PSPI {_fmt(f.get('pspi'), '4.1f')}  "
                + " ".join(f"{au.upper()} {_fmt(f.get(au), '3.1f')}"
                           for au in ("au4", "au6", "au7", "au9", "au10", "au43"))
                + f"   emotion {top}   quality {msg.get('quality', 0):.2f} "
                f"confidence {msg.get('confidence', 0):.2f}"
                + (f"   [{', '.join(msg['flags'])}]" if msg.get("flags") else ""))
    if kind == "pain":
        return _pain_text(msg)
    if kind == "alarm" and "event" in msg:
        return (f"alarm   {msg['event'].upper()} #{msg.get('alarm_id')} {msg.get('kind')}/"
                f"{msg.get('source')} {msg.get('priority')}: {msg.get('message', '')}")
    if kind == "status":
        return f"status  {msg.get('state')} (boot {msg.get('boot_id')})"
    return f"{kind:7} {json.dumps(msg)[:160]}"


class ConsoleSubscriber:
    """Subscribes to everything the device publishes and prints each message as one line."""

    def __init__(self, host: str, port: int, topic: str, protocol: str, out: TextIO,
                 annotate: Callable[[str], str] | None = None) -> None:
        proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=proto,
                                  client_id=f"painmon-demo-console-{uuid.uuid4().hex[:6]}")
        self.topic = topic
        self.out = out
        self.annotate = annotate
        self.received = 0
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        self.received += 1
        line = format_message(message.topic, message.payload)
        if self.annotate is not None and message.topic.endswith("/vitals"):
            line += self.annotate(message.topic)
        print(line, file=self.out, flush=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def device_topics(config: PainmonConfig) -> str:
    """Every topic the configured device publishes on (its root with ``#``)."""
    return f"{config.mqtt.topic_prefix}/{config.device_id}/#"


def where(config: PainmonConfig) -> str:
    """The broker and topics a run publishes to, for its first line on the console."""
    return f"MQTT {config.mqtt.host}:{config.mqtt.port} topic {device_topics(config)}"


def console_for(config: PainmonConfig, out: TextIO,
                annotate: Callable[[str], str] | None = None) -> ConsoleSubscriber:
    """A console printing everything the configured device publishes."""
    return ConsoleSubscriber(config.mqtt.host, config.mqtt.port, device_topics(config),
                             config.mqtt.protocol, out, annotate)
