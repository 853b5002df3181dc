"""``painmon watch``: a live terminal view of one or many devices, from the public MQTT API only.

It subscribes to ``<prefix>/<device>/#`` (``+`` for every device) and keeps, per device, the
latest status, pain estimate (with the stay it belongs to), vitals, active alarms (a pending
reassessment among them) and sensor states; scale scores are printed as they come. On a terminal it redraws
a table once a second (plain ANSI: home + clear); ``--lines`` (or output that is not a
terminal) prints one line per message instead, which is what scripts and tests read.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TextIO

import paho.mqtt.client as mqtt

CLEAR = "\x1b[H\x1b[2J"


@dataclass
class DeviceView:
    device_id: str
    status: str = "?"
    pain: dict = field(default_factory=dict)
    vitals: dict = field(default_factory=dict)
    alarms: list = field(default_factory=list)
    sensors: dict = field(default_factory=dict)
    last_t: str = ""


def _num(value, spec: str) -> str:
    return "--" if not isinstance(value, (int, float)) or isinstance(value, bool) \
        else format(value, spec)


class FleetView:
    """The devices seen so far; ``update`` takes one MQTT message, returns a line or None."""

    def __init__(self, prefix: str = "painmon") -> None:
        self.prefix = prefix
        self.devices: dict[str, DeviceView] = {}
        self._lock = threading.Lock()

    def update(self, topic: str, payload: bytes) -> str | None:
        parts = topic.split("/")
        prefix_levels = len(self.prefix.split("/"))
        if len(parts) < prefix_levels + 2:
            return None
        device_id, kind = parts[prefix_levels], "/".join(parts[prefix_levels + 1:])
        try:
            msg = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(msg, dict):
            return None
        with self._lock:
            dev = self.devices.setdefault(device_id, DeviceView(device_id))
            dev.last_t = str(msg.get("t", dev.last_t))
            if kind == "status":
                dev.status = str(msg.get("state", "?"))
                return f"{device_id} status {dev.status}"
            if kind == "pain":
                dev.pain = msg
                return (f"{device_id} pain {_num(msg.get('score'), '.1f')} "
                        f"{msg.get('level') or '--'} confidence {_num(msg.get('confidence'), '.2f')}"
                        f" stay {msg.get('stay') or '--'}"
                        + (" (late)" if msg.get("late") else ""))
            if kind == "scale":
                return (f"{device_id} scale {msg.get('scale')} {msg.get('total')}/"
                        f"{msg.get('max_total')} stay {msg.get('stay')} (estimate "
                        f"{_num(msg.get('estimate'), '.1f')})")
            if kind == "vitals":
                dev.vitals = msg
                if isinstance(msg.get("sensors"), dict):
                    dev.sensors = msg["sensors"]
                hr = msg.get("hr_bpm") or {}
                return (f"{device_id} vitals HR {_num(hr.get('ppg'), '.0f')}/"
                        f"{_num(hr.get('ecg'), '.0f')} bpm EDA {_num(msg.get('eda_us'), '.2f')} uS")
            if kind == "health" and isinstance(msg.get("sensors"), dict):
                dev.sensors = msg["sensors"]
                return f"{device_id} health {self._sensor_text(dev)}"
            if kind == "alarms":
                dev.alarms = list(msg.get("active") or [])
                return f"{device_id} alarms {self._alarm_text(dev)}"
            if kind == "alarm":
                return (f"{device_id} alarm {msg.get('event')} {msg.get('kind')}/"
                        f"{msg.get('source')} {msg.get('priority')}: {msg.get('message', '')}")
            if kind == "cmd/result":
                return (f"{device_id} result {msg.get('command')} "
                        f"{'ok' if msg.get('ok') else 'refused: ' + str(msg.get('reason'))}")
        return None

    @staticmethod
    def _sensor_text(dev: DeviceView) -> str:
        down = [f"{name} {s.get('state')}" for name, s in sorted(dev.sensors.items())
                if isinstance(s, dict) and s.get("state") != "ok"]
        return ", ".join(down) if down else ("all ok" if dev.sensors else "--")

    @staticmethod
    def _alarm_text(dev: DeviceView) -> str:
        return ", ".join(f"{a.get('kind')}/{a.get('source')} {a.get('priority')}"
                         for a in dev.alarms if isinstance(a, dict)) or "none"

    def render(self) -> str:
        header = (f"{'device':16} {'status':8} {'stay':12} {'pain':>5} {'level':9} {'conf':>5} "
                  f"{'HR':>5} {'EDA uS':>7}  {'alarms':24} sensors")
        rows = [header, "-" * len(header)]
        with self._lock:
            for dev in sorted(self.devices.values(), key=lambda d: d.device_id):
                hr = (dev.vitals.get("hr_bpm") or {})
                hr_bpm = hr.get("ppg") if hr.get("ppg") is not None else hr.get("ecg")
                rows.append(
                    f"{dev.device_id[:16]:16} {dev.status:8} {str(dev.pain.get('stay') or '--')[:12]:12} "
                    f"{_num(dev.pain.get('score'), '5.1f'):>5} "
                    f"{dev.pain.get('level') or '--'!s:9} "
                    f"{_num(dev.pain.get('confidence'), '5.2f'):>5} {_num(hr_bpm, '5.0f'):>5} "
                    f"{_num(dev.vitals.get('eda_us'), '7.2f'):>7}  {self._alarm_text(dev)[:24]:24} "
                    f"{self._sensor_text(dev)}")
        return "\n".join(rows) + "\n"


def run_watch(host: str, port: int, *, device: str | None = None, prefix: str = "painmon",
              seconds: float | None = None, lines: bool | None = None, protocol: str = "5",
              out: TextIO = sys.stdout) -> int:
    """Watch until Ctrl-C (or ``seconds``); 1 when the broker cannot be reached."""
    view = FleetView(prefix)
    lines = (not out.isatty()) if lines is None else lines
    topic = f"{prefix}/{device or '+'}/#"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"painmon-watch-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311)
    printed = threading.Lock()

    def on_connect(c, _userdata, _flags, reason, _props) -> None:
        if not reason.is_failure:
            c.subscribe(topic, qos=1)

    def on_message(_c, _userdata, message) -> None:
        line = view.update(message.topic, bytes(message.payload))
        if lines and line is not None:
            with printed:
                print(line, file=out, flush=True)

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        print(f"painmon watch: cannot reach {host}:{port}: {exc}", file=sys.stderr)
        return 1
    client.loop_start()
    end = None if seconds is None else time.monotonic() + seconds
    try:
        while end is None or time.monotonic() < end:
            time.sleep(1.0 if end is None else max(0.0, min(1.0, end - time.monotonic())))
            if not lines:
                out.write(CLEAR + view.render())
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    if lines:
        print(view.render(), file=out, end="", flush=True)
    return 0
