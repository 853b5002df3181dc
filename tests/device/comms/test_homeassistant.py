"""Home Assistant discovery, SenML, MQTT 5 session and will delay, against a real mosquitto."""

from __future__ import annotations

import time

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensors.clock import SteppedClock
from tests.device.mqtt_helpers import command, device_config, serve, wait_until

from device.app.root import build_monitor
from device.comms import schemas
from device.comms.homeassistant import REQUIRED_KEYS, discovery_messages
from device.comms.link import MqttLink
from device.comms.senml import to_senml

HA = schemas.load_file("ha_discovery.v1.schema.json")
SENML = schemas.load_file("senml.v1.schema.json")

# Sample discovery payloads as Home Assistant's MQTT documentation shows them (sensor with a
# device and availability; binary sensor); our schema must accept what the docs accept.
HA_DOC_SAMPLES = [
    {"name": "Temperature", "device_class": "temperature", "state_topic":
     "homeassistant/sensor/sensorBedroom/state", "unit_of_measurement": "°C",
     "value_template": "{{ value_json.temperature}}", "unique_id": "temp01ae",
     "device": {"identifiers": ["bedroom01ae"], "name": "Bedroom"},
     "availability": [{"topic": "homeassistant/sensor/sensorBedroom/status"}],
     "origin": {"name": "bla2mqtt", "sw_version": "2.1", "support_url": "https://x.invalid"}},
    {"name": "Motion", "device_class": "motion", "state_topic":
     "homeassistant/binary_sensor/garden/state", "unique_id": "motion01ad",
     "device": {"identifiers": ["01ad"], "name": "Garden"}, "payload_on": "ON",
     "payload_off": "OFF", "availability": [{"topic": "garden/status"}],
     "origin": {"name": "bla2mqtt"}},
]


def test_schema_accepts_the_documented_samples_and_refuses_incomplete_ones():
    for sample in HA_DOC_SAMPLES:
        jsonschema.validate(sample, HA)
    for key in ("unique_id", "state_topic", "device", "availability"):
        broken = {k: v for k, v in HA_DOC_SAMPLES[0].items() if k != key}
        try:
            jsonschema.validate(broken, HA)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"a config without {key} passed")
    no_identifiers = {**HA_DOC_SAMPLES[0], "device": {"name": "x"}}
    try:
        jsonschema.validate(no_identifiers, HA)
        raise AssertionError("a device block without identifiers passed")
    except jsonschema.ValidationError:
        pass


def test_discovery_configs_are_complete_and_consistent():
    messages = discovery_messages(device_id="bed-9", base_topic="painmon/bed-9",
                                  sw_version="1.2")
    by_object = {t.split("/")[3]: (t, p) for t, p in messages}
    assert set(by_object) == {"pain_score", "pain_level", "pain_confidence", "heart_rate", "eda",
                              "alarm"}
    assert by_object["alarm"][0] == "homeassistant/binary_sensor/bed-9/alarm/config"
    ids = set()
    for _topic, payload in messages:
        jsonschema.validate(payload, HA)
        assert all(k in payload for k in REQUIRED_KEYS)
        assert payload["availability"][0]["topic"] == "painmon/bed-9/status"
        assert payload["device"]["identifiers"] == ["painmon_bed-9"]
        assert payload["state_topic"].startswith("painmon/bed-9/")
        ids.add(payload["unique_id"])
    assert len(ids) == len(messages)


def test_templates_read_the_payloads_they_point_at():
    """Render the value templates with jinja2 when available (Home Assistant's engine)."""
    jinja2 = pytest.importorskip("jinja2")

    env = jinja2.Environment()
    pain = {"score": 4.25, "level": "moderate", "confidence": 0.734}
    vitals = {"hr_bpm": {"ppg": None, "ecg": 71.5}, "eda_us": 3.2}
    alarms_on, alarms_off = {"active": [{"alarm_id": "1"}]}, {"active": []}
    payloads = {"pain": pain, "vitals": vitals}
    for _, config in discovery_messages(device_id="b", base_topic="painmon/b"):
        template = env.from_string(config["value_template"])
        kind = config["state_topic"].rsplit("/", 1)[-1]
        if kind == "alarms":
            assert template.render(value_json=alarms_on) == "ON"
            assert template.render(value_json=alarms_off) == "OFF"
        else:
            assert template.render(value_json=payloads[kind]) not in ("", "None")
        assert env.from_string(config["availability"][0]["value_template"]).render(
            value_json={"state": "online"}) == "online"


def test_discovery_is_retained_and_republished_when_home_assistant_comes_online(
        mosquitto, mqtt_probe, tmp_path):
    device_id = "bed-ha"
    config = device_config(mosquitto, tmp_path, device_id, ha_discovery=True)
    monitor = build_monitor(config, SteppedClock(), [])
    pipeline = monitor.pipeline
    link = MqttLink(config.mqtt, device_id)
    output = serve(monitor, link)
    link.start()
    try:
        assert link.wait_connected(5)
        wait_until(lambda: output.discovery_published >= 1, 5, "discovery")
        # Handed to paho is not yet stored by the broker: a subscriber arriving in between
        # gets the configs live (retain 0). Wait for the PUBACKs first.
        assert link.wait_backlog(0, 5)
        late = mqtt_probe(mosquitto.host, mosquitto.port, "homeassistant/#")
        wait_until(lambda: len(late.messages) >= 6, 5, "six retained configs")
        assert all(m.retain for m in late.messages)
        for m in late.messages:
            jsonschema.validate(m.json(), HA)
        alarms = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{device_id}/alarms")
        assert alarms.wait_for(lambda m: m.retain).json()["active"] == []
        pipeline.alarms.raise_alarm("sensor_missing", "ppg", category="technical",
                                    priority="medium", message="gone")
        assert alarms.wait_for(lambda m: m.json()["active"]).json()["loudest"] == "medium"
        before = output.discovery_published
        announcer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        announcer.connect(mosquitto.host, mosquitto.port)
        announcer.loop_start()
        announcer.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        wait_until(lambda: output.discovery_published > before, 5, "republished on HA birth")
        announcer.publish("homeassistant/status", b"offline", qos=1).wait_for_publish(5)
        time.sleep(0.3)
        assert output.discovery_published == before + 1
        announcer.disconnect()
        announcer.loop_stop()
    finally:
        output.stop()
        link.stop()
        pipeline.stop()


def test_senml_packs_follow_rfc_8428():
    vitals = {"t": "2026-01-01T00:00:01.500Z", "hr_bpm": {"ppg": 72.0, "ecg": None},
              "eda_us": 2.5, "motion_g": 0.1}
    pack = to_senml("bed-1", "vitals", vitals)
    jsonschema.validate(pack, SENML)
    assert pack[0]["bn"] == "urn:dev:painmon:bed-1:" and pack[0]["bt"] == 1767225601.5
    by_name = {r["n"]: r for r in pack}
    assert by_name["hr_ppg"]["u"] == "beat/min" and "hr_ecg" not in by_name
    assert by_name["eda"] == {"n": "eda", "u": "S", "v": 2.5e-6}
    assert abs(by_name["motion"]["v"] - 0.980665) < 1e-9
    pain = to_senml("bed-1", "pain", {"t": vitals["t"], "score": 3.5, "confidence": 0.5})
    assert [r["n"] for r in pain] == ["pain_score", "pain_confidence"]
    assert to_senml("bed-1", "pain", {"score": None, "confidence": None}) is None


def test_commands_sent_while_the_device_is_away_arrive_when_it_returns(mosquitto, mqtt_probe,
                                                                        tmp_path):
    """Persistent session: clean_start false with a session expiry keeps the subscription."""
    device_id = "bed-sess"
    config = device_config(mosquitto, tmp_path, device_id)
    results = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{device_id}/cmd/result")

    def run_device(seconds: float, action=None):
        monitor = build_monitor(config, SteppedClock(), [])
        pipeline = monitor.pipeline
        link = MqttLink(config.mqtt, device_id)
        output = serve(monitor, link)
        link.start()
        try:
            assert link.wait_connected(5)
            if action:
                action()
            time.sleep(seconds)
            output.sender.wait_idle(5)
            return link.session_present
        finally:
            output.stop()
            link.stop()
            pipeline.stop()

    assert run_device(0.5) is False  # first connect: a new session
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sender.connect(mosquitto.host, mosquitto.port)
    sender.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 60
    sender.publish(f"painmon/{device_id}/cmd/nurse/ping", command(request_id="while-away"),
                   qos=1, properties=props).wait_for_publish(5)
    sender.disconnect()
    sender.loop_stop()
    assert run_device(1.0) is True  # the broker kept the session and the command
    answer = results.wait_for(lambda m: m.json().get("request_id") == "while-away", 5).json()
    assert answer["ok"] and answer["result"]["pong"] is True


def test_will_delay_holds_the_offline_back(mosquitto, mqtt_probe):
    """A device that vanishes is announced offline only after the will delay."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom device.config import MqttConfig\nfrom device.comms.link import MqttLink\n"
        f"link = MqttLink(MqttConfig(port={mosquitto.port}, will_delay_s=2), 'bed-will')\n"
        "link.start(); link.wait_connected(10); print('ready', flush=True); time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    probe = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/bed-will/status")
    try:
        assert child.stdout.readline().strip() == "ready"
        probe.wait_for(lambda m: m.json()["state"] == "online")
        t0 = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        probe.wait_for(lambda m: m.json()["state"] == "offline", timeout=10)
        took_s = time.monotonic() - t0
    finally:
        child.kill()
        child.wait(5)
    assert 1.8 <= took_s <= 6.0, took_s
