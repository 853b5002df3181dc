"""``painmon watch`` reads the public topics of a real broker and shows what it saw."""

from __future__ import annotations

import json
import subprocess
import sys

import paho.mqtt.client as mqtt

from tests.conftest import REPO

from device.app.watch import FleetView

ENVELOPE = {"boot_id": "b1", "t": "2026-01-01T00:00:00.000Z"}


def samples(device_id: str, score: float, hr: float) -> list[tuple[str, dict]]:
    root = f"painmon/{device_id}"
    return [
        (f"{root}/status", {"schema": "painmon.status/1", "device_id": device_id,
                            "boot_id": "b1", "state": "online"}),
        (f"{root}/vitals", {**ENVELOPE, "seq": 1, "schema": "painmon.vitals/1",
                            "hr_bpm": {"ppg": hr, "ecg": None}, "eda_us": 3.25,
                            "sensors": {"ppg": {"state": "ok"}, "adc": {"state": "missing"}}}),
        (f"{root}/pain", {**ENVELOPE, "seq": 2, "schema": "painmon.pain/1", "score": score,
                          "level": "moderate", "confidence": 0.62}),
        (f"{root}/alarms", {**ENVELOPE, "seq": 3, "schema": "painmon.alarms/1", "active": [
            {"alarm_id": "1", "kind": "pain_high", "source": "pain", "priority": "high"}],
            "loudest": "high"}),
    ]


def test_fleet_view_keeps_the_latest_per_device():
    view = FleetView()
    for topic, body in samples("bed-a", 5.5, 88.0) + samples("bed-b", 1.0, 61.0):
        view.update(topic, json.dumps(body).encode())
    assert view.update("painmon/bed-a/pain", b"not json") is None
    line = view.update("painmon/bed-a/pain", json.dumps(
        {"score": 6.0, "level": "moderate", "confidence": 0.7, "late": True,
         "stay": "enc-17"}).encode())
    assert line == "bed-a pain 6.0 moderate confidence 0.70 stay enc-17 (late)"
    scale = view.update("painmon/bed-a/scale", json.dumps(
        {"scale": "cpot", "total": 5, "max_total": 8, "stay": "enc-17", "estimate": 5.9}).encode())
    assert scale == "bed-a scale cpot 5/8 stay enc-17 (estimate 5.9)"
    table = view.render().splitlines()
    assert "enc-17" in table[2] and " -- " in table[3]  # bed-b: nobody admitted
    assert len(table) == 4 and table[2].startswith("bed-a") and table[3].startswith("bed-b")
    assert "6.0" in table[2] and "88" in table[2] and "pain_high/pain high" in table[2]
    assert "adc missing" in table[2]
    assert "1.0" in table[3] and "61" in table[3]


def test_watch_command_against_a_broker(mosquitto):
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    for device_id, score, hr in (("bed-w1", 7.2, 95.0), ("bed-w2", 0.4, 58.0)):
        for topic, body in samples(device_id, score, hr):
            publisher.publish(topic, json.dumps(body), qos=1, retain=True).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()
    broker = f"{mosquitto.host}:{mosquitto.port}"
    run = subprocess.run([sys.executable, "-m", "device.cli", "watch", "--broker", broker,
                          "--lines", "--seconds", "2"], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "bed-w1 pain 7.2 moderate confidence 0.62" in out
    assert "bed-w2 vitals HR 58/-- bpm EDA 3.25 uS" in out
    assert "bed-w1 alarms pain_high/pain high" in out
    table = [line for line in out.splitlines() if line.startswith("bed-w")][-2:]
    assert table[0].split()[:4] == ["bed-w1", "online", "--", "7.2"]  # no stay: --
    one = subprocess.run([sys.executable, "-m", "device.cli", "watch", "--broker", broker,
                          "--device", "bed-w2", "--lines", "--seconds", "1.5"], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=False)
    assert "bed-w2 pain 0.4" in one.stdout and "bed-w1" not in one.stdout
    bad = subprocess.run([sys.executable, "-m", "device.cli", "watch", "--broker", "nope"],
                         cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
