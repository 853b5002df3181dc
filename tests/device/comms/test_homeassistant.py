"""Home Assistant discovery, SenML, MQTT 5 session and will delay, against a real mosquitto."""

from __future__ import annotations

import json
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
from device.comms.ha_state import HomeAssistantState
from device.comms.homeassistant import REQUIRED_KEYS, discovery_config, discovery_messages
from device.comms.link import MqttLink
from device.comms.senml import to_senml
from device.config import ConfigError, load_config
from device.processing.health import PRIORITY as TECHNICAL_PRIORITY

HA = schemas.load_file("ha_discovery.v1.schema.json")
HA_STATE = schemas.load_file("ha_state.v1.schema.json")
SENML = schemas.load_file("senml.v1.schema.json")

# A device-based discovery config as Home Assistant's MQTT documentation shows it (keys written
# out; Home Assistant expands its abbreviations dev, o, cmps, p to these): our schema must
# accept what the docs accept.
HA_DOC_SAMPLE = {
    "device": {"identifiers": ["0AFFD2"], "name": "Foobar", "manufacturer": "Bla electronics",
               "model": "xya", "sw_version": "1.0", "serial_number": "ea334450945afc",
               "hw_version": "1.0rev2"},
    "origin": {"name": "bla2mqtt", "sw_version": "2.1", "support_url": "https://x.invalid"},
    "components": {
        "some_unique_component_id1": {
            "platform": "sensor", "device_class": "temperature", "unit_of_measurement": "°C",
            "value_template": "{{ value_json.temperature}}", "unique_id": "temp01ae_t"},
        "some_unique_id2": {
            "platform": "sensor", "device_class": "humidity", "unit_of_measurement": "%",
            "value_template": "{{ value_json.humidity}}", "unique_id": "temp01ae_h"}},
    "state_topic": "sensorBedroom/state",
    "qos": 2,
}


def config_for(device_id: str = "bed-9") -> dict:
    return discovery_config(device_id=device_id, base_topic=f"painmon/{device_id}",
                            sw_version="1.2")


def test_schema_accepts_the_documented_sample_and_refuses_incomplete_ones():
    jsonschema.validate(HA_DOC_SAMPLE, HA)
    for key in ("device", "origin", "components"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({k: v for k, v in HA_DOC_SAMPLE.items() if k != key}, HA)
    component = HA_DOC_SAMPLE["components"]["some_unique_id2"]
    for broken in ({k: v for k, v in component.items() if k != "platform"},
                   {k: v for k, v in component.items() if k != "unique_id"},
                   {**component, "object_id": "temp"},  # deprecated since 2025.10
                   {**component, "default_entity_id": "Sensor.Temp"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**HA_DOC_SAMPLE, "components": {"c": broken}}, HA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**HA_DOC_SAMPLE, "device": {"name": "x"}}, HA)  # no identifiers


def test_discovery_config_is_complete_and_suggests_entity_ids():
    config = config_for("Bed-9")
    jsonschema.validate(config, HA)
    components = config["components"]
    assert config["state_topic"] == "painmon/Bed-9/ha"
    assert config["availability"][0]["topic"] == "painmon/Bed-9/status"
    assert config["device"]["identifiers"] == ["painmon_Bed-9"]
    assert {"pain_score", "pain_level", "pain_alarm", "pain_confidence", "signal_quality",
            "heart_rate", "eda", "motion", "acknowledge", "calibrate"} <= set(components)
    # One problem entity per technical alarm kind the health check raises, plus the camera.
    for kind in (*(k for k in TECHNICAL_PRIORITY if k != "camera_missing"), "camera"):
        assert components[kind]["platform"] == "binary_sensor"
        assert components[kind]["device_class"] == "problem"
    assert components["pain_confidence"]["entity_category"] == "diagnostic"
    assert components["signal_quality"]["entity_category"] == "diagnostic"
    for key, component in components.items():
        assert all(k in component for k in REQUIRED_KEYS)
        assert "object_id" not in component
        assert component["default_entity_id"] == f"{component['platform']}.painmon_bed_9_{key}"
    assert len({c["unique_id"] for c in components.values()}) == len(components)
    assert len({c["default_entity_id"] for c in components.values()}) == len(components)


def pressed(component: dict) -> str:
    """What Home Assistant publishes when the button is pressed: its command template rendered
    (with jinja2, Home Assistant's engine) on its payload."""
    from datetime import UTC, datetime

    import jinja2

    template = jinja2.Environment().from_string(component["command_template"])
    return template.render(value=component["payload_press"], utcnow=lambda: datetime.now(UTC))


@pytest.mark.parametrize("button,command", [("acknowledge", "acknowledge"),
                                            ("calibrate", "calibrate"),
                                            ("dose_oral", "analgesia")])
def test_buttons_send_the_device_command_payloads(button, command):
    """What a press publishes: the command's payload, stamped with the time of the press by
    the button's template (rendered here with jinja2, Home Assistant's engine), on the nurse
    role's topic; the device takes it as fresh."""
    jinja2 = pytest.importorskip("jinja2")
    from datetime import UTC, datetime

    from sensors.clock import MonotonicClock

    from device.processing.commands import CommandRouter

    component = config_for()["components"][button]
    schema = schemas.load_file(f"command.{command}.v1.schema.json")
    assert component["command_topic"] == schema["x-topic"].replace(
        "<device_id>", "bed-9").replace("<role>", "nurse")
    template = jinja2.Environment().from_string(component["command_template"])
    sent = json.loads(template.render(value=component["payload_press"],
                                      utcnow=lambda: datetime.now(UTC)))
    jsonschema.validate(sent, schema)
    assert sent == {**json.loads(component["payload_press"]), "t": sent["t"]}
    from device.care.bedside import AnalgesiaRequest
    from device.care.pain import AcknowledgeRequest, CalibrateRequest
    from device.processing.commands import ANYONE

    model = {"acknowledge": AcknowledgeRequest, "calibrate": CalibrateRequest,
             "analgesia": AnalgesiaRequest}[command]
    router = CommandRouter(MonotonicClock())
    router.register(command, model, lambda request: {"seen": True}, "as the device", roles=ANYONE)
    answer = router.handle(command, json.dumps(sent).encode(), role="nurse")
    assert answer["ok"], answer  # valid, and fresh by its stamp


def test_discovery_messages_hand_over_the_old_per_entity_configs():
    messages = discovery_messages(device_id="bed-9", base_topic="painmon/bed-9")
    device_topic = "homeassistant/device/painmon_bed-9/config"
    topics = [t for t, _, _ in messages]
    at = topics.index(device_topic)
    legacy = "homeassistant/sensor/bed-9/pain_score/config"
    # Home Assistant's documented order: migrate, new config, then clear the old retained one.
    assert (legacy, b'{"migrate_discovery":true}', False) in messages[:at]
    assert (legacy, b"", True) in messages[at + 1:]
    assert messages[at][2] is True
    jsonschema.validate(json.loads(messages[at][1]), HA)


def ha_state(every_s: float = 10.0):
    now = [0.0]
    sent: list[dict] = []
    seq = iter(range(1, 10**6))
    state = HomeAssistantState(every_s, lambda: now[0], lambda schema: {
        "schema": schema, "device_id": "bed-9", "boot_id": "b", "seq": next(seq),
        "t": "2026-01-01T00:00:00.000Z"}, sent.append)
    return state, now, sent


PAIN = {"score": 2.04, "level": "mild", "confidence": 0.734}
VITALS = {"hr_bpm": {"ppg": None, "ecg": 71.4}, "eda_us": 3.214, "motion_g": 0.0312,
          "quality": {"ppg": 0.5, "ecg": 1.0}}


def test_home_assistant_state_is_paced_and_discrete_changes_go_at_once():
    state, now, sent = ha_state(every_s=10.0)
    state.observe("pain", PAIN)
    state.observe("vitals", VITALS)  # 0.5 s later: measurements wait for the pace
    assert len(sent) == 1 and sent[0]["score"] == 2.0 and sent[0]["hr_bpm"] is None
    now[0] = 5.0
    state.observe("pain", {**PAIN, "score": 3.0})
    assert len(sent) == 1
    state.observe("pain", {**PAIN, "score": 5.0, "level": "moderate"})  # discrete: at once
    assert len(sent) == 2 and sent[-1]["level"] == "moderate" and sent[-1]["hr_bpm"] == 71
    state.observe("alarms", {"active": [
        {"kind": "finger_off", "source": "ppg", "category": "technical", "message": "off"}]})
    assert sent[-1]["problems"]["finger_off"] == "off" and sent[-1]["alarm"] is True
    assert sent[-1]["pain_alarm"] is False
    now[0] = 14.0
    state.observe("vitals", {**VITALS, "eda_us": 4.0})
    assert len(sent) == 3  # 9 s after the last: waits
    now[0] = 15.5
    state.observe("vitals", {**VITALS, "eda_us": 4.5})
    assert len(sent) == 4 and sent[-1]["eda_us"] == 4.5
    state.observe("vitals", {**VITALS, "eda_us": 4.5})  # nothing new: nothing sent
    assert len(sent) == 4
    for message in sent:
        jsonschema.validate(message, HA_STATE)


def test_on_change_mode_and_late_replays():
    state, _, sent = ha_state(every_s=0.0)
    state.observe("vitals", VITALS)
    state.observe("vitals", {**VITALS, "eda_us": 3.2139})  # rounds the same: no change
    state.observe("vitals", {**VITALS, "eda_us": 3.5})
    assert [m["eda_us"] for m in sent] == [3.21, 3.5]
    state.observe("pain", {**PAIN, "score": 9.0, "level": "severe", "late": True})
    assert sent[-1]["score"] is None and state.ignored_late == 1
    state.observe("health", {"camera": {"state": "missing", "reason": "no /dev/video0"}})
    assert sent[-1]["problems"]["camera"] == "no /dev/video0"


def test_the_stay_and_a_due_reassessment_reach_home_assistant_at_once():
    """The bedside workflow's stay and its reassessment notice (a low-priority physiological
    alarm) are their own entities: the notice is not the pain alarm."""
    state, _, sent = ha_state(every_s=3600.0)
    state.observe("pain", {**PAIN, "stay": "stay-07"})
    assert sent[-1]["stay"] == "stay-07"
    state.observe("alarms", {"active": [{"kind": "reassessment_due", "source": "dose-1",
                                         "category": "physiological", "priority": "low"}]})
    assert sent[-1]["reassessment_due"] is True and sent[-1]["pain_alarm"] is False
    assert sent[-1]["alarm"] is True
    state.observe("alarms", {"active": [{"kind": "pain_high", "source": "pain",
                                         "category": "physiological", "priority": "medium"}]})
    assert sent[-1]["reassessment_due"] is False and sent[-1]["pain_alarm"] is True
    state.observe("pain", {**PAIN, "stay": None})
    assert sent[-1]["stay"] is None
    for message in sent:
        jsonschema.validate(message, HA_STATE)


def test_templates_read_the_state_they_point_at():
    """Render the value templates with jinja2 (Home Assistant's engine) on real state."""
    jinja2 = pytest.importorskip("jinja2")

    state, _, sent = ha_state(every_s=0.0)
    state.observe("pain", PAIN)
    state.observe("vitals", VITALS)
    state.observe("alarms", {"active": [
        {"kind": "pain_high", "source": "pain", "category": "physiological"},
        {"kind": "lead_off", "source": "ecg", "category": "technical", "message": "LA off"}]})
    env = jinja2.Environment()
    rendered = {key: env.from_string(c["value_template"]).render(value_json=sent[-1])
                for key, c in config_for()["components"].items() if "value_template" in c}
    assert rendered["pain_score"] == "2.0" and rendered["pain_level"] == "mild"
    assert rendered["pain_confidence"] == "73" and rendered["signal_quality"] == "75"
    assert rendered["heart_rate"] == "71" and rendered["eda"] == "3.21"
    assert rendered["pain_alarm"] == "ON" and rendered["alarm"] == "ON"
    assert rendered["lead_off"] == "ON" and rendered["finger_off"] == "OFF"
    reason = config_for()["components"]["lead_off"]["json_attributes_template"]
    env.filters["tojson"] = json.dumps  # Home Assistant's, for plain values
    assert json.loads(env.from_string(reason).render(value_json=sent[-1])) == {"reason": "LA off"}
    availability = config_for()["availability"][0]["value_template"]
    assert env.from_string(availability).render(value_json={"state": "online"}) == "online"


def test_ha_state_pace_is_validated_by_name(tmp_path):
    path = tmp_path / "painmon.toml"
    path.write_text("[mqtt]\nha_state_every_s = -1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "mqtt.ha_state_every_s" in str(err.value)


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
        configs = late.wait_for(lambda m: m.topic.startswith("homeassistant/device/"))
        assert configs.retain and configs.topic == f"homeassistant/device/painmon_{device_id}/config"
        jsonschema.validate(configs.json(), HA)
        time.sleep(0.3)
        # The old per-entity configs were cleared: nothing else is retained for this device.
        assert [m.topic for m in late.messages] == [configs.topic]
        state = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{device_id}/ha")
        assert state.wait_for(lambda m: m.retain).json()["alarm"] is False
        pipeline.alarms.raise_alarm("finger_off", "ppg", category="technical",
                                    priority="low", message="finger off")
        on = state.wait_for(lambda m: m.json()["problems"]["finger_off"]).json()
        jsonschema.validate(on, HA_STATE)
        assert on["alarm"] is True and on["pain_alarm"] is False
        # What Home Assistant's buttons publish reaches the device's own command handlers.
        # Home Assistant's side: its buttons and its birth message, from a client of its own.
        announcer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        announcer.connect(mosquitto.host, mosquitto.port)
        announcer.loop_start()
        results = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{device_id}/cmd/result")
        # Calibrating belongs to a patient's stay: admit one first.
        assert monitor.commands.handle("admit", b'{"reference": "stay-01"}')["ok"]
        buttons = config_for(device_id)["components"]
        for key in ("acknowledge", "calibrate"):
            announcer.publish(buttons[key]["command_topic"], pressed(buttons[key]),
                              qos=1).wait_for_publish(5)
            answer = results.wait_for(lambda m, key=key: m.json()["command"] == key).json()
            assert answer["ok"], answer
        assert pipeline.alarms.get("finger_off", "ppg").state == "acknowledged"
        before = output.discovery_published
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


def test_estimates_from_an_outage_reach_painmon_topics_not_home_assistant(
        mosquitto, mqtt_probe, tmp_path):
    """While the broker is out of reach estimates wait in the outbox; when it is back they go
    to the pain topic with late, and Home Assistant gets only the newest state."""
    device_id = "bed-late"
    config = device_config(mosquitto, tmp_path, device_id, ha_discovery=True)
    monitor = build_monitor(config, SteppedClock(), [])
    pipeline = monitor.pipeline
    link = MqttLink(config.mqtt, device_id)
    output = serve(monitor, link)
    pain = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{device_id}/pain")
    state = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{device_id}/ha")
    try:
        for score in (8.0, 8.5, 9.0, 2.0):  # produced before the link is up: an outage
            message = pipeline.envelope("painmon.pain/1")
            message.update(score=score, level="severe" if score > 7 else "mild",
                           confidence=0.8, contributions={}, flags=[])
            output("pain", message)
        link.start()
        assert link.wait_connected(5)
        replayed = [pain.wait_for(lambda m, s=s: m.json()["score"] == s).json()
                    for s in (8.0, 8.5, 9.0, 2.0)]
        assert all(m.get("late") is True for m in replayed)
        newest = state.wait_for(lambda m: m.json()["score"] is not None).json()
        time.sleep(0.3)
        assert newest["score"] == 2.0 and newest["level"] == "mild"
        assert [m.json()["score"] for m in state.messages] == [2.0]
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
