"""The public MQTT API: every message the device publishes validates against its schema."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest

from sensors.clock import ScaledClock
from tests.device.mqtt_helpers import command, device_config, wait_until
from tools import api_docs

from device.app.device import mqtt_output
from device.app.root import build_monitor
from device.comms import schemas
from device.comms.link import MqttLink


def check_date_time(value: str) -> None:
    # jsonschema checks "date-time" only with an optional package: check it here.
    assert value.endswith("Z"), value
    datetime.fromisoformat(value)


def validate(topic: str, body, discovery_prefix: str = "homeassistant") -> str:
    """Validate one published payload; returns the schema it was checked against."""
    if topic.startswith(discovery_prefix + "/") and not topic.startswith(
            discovery_prefix + "/device/"):
        # The hand-over of the pre-2026 per-entity configs: a migrate request, then cleared.
        assert body in ({"migrate_discovery": True}, None), (topic, body)
        return "ha_legacy_handover"
    if topic.startswith(discovery_prefix + "/"):
        schema = schemas.load_file("ha_discovery.v1.schema.json")
        name = "ha_discovery"
    elif topic.endswith("/senml"):
        schema = schemas.load_file("senml.v1.schema.json")
        name = "senml"
    else:
        name = body["schema"]
        schema = schemas.load(name)
        for key in ("t", "raised_t"):
            if isinstance(body.get(key), str):
                check_date_time(body[key])
    jsonschema.Draft202012Validator(schema).validate(body)
    return name


@pytest.mark.parametrize("path", schemas.all_files(), ids=lambda p: p.name)
def test_every_schema_is_a_valid_2020_12_schema(path: Path):
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] and schema["description"] and schema["x-topic"]


def test_envelopes_agree_and_versions_match_file_names():
    envelopes = {}
    for path in schemas.all_files():
        schema = json.loads(path.read_text())
        const = schema.get("properties", {}).get("schema", {}).get("const")
        if const is None:
            continue
        name, major = path.name.removesuffix(".schema.json").rsplit(".v", 1)
        assert const == f"painmon.{name}/{major}", path.name
        if "seq" in schema["properties"]:
            envelopes[path.name] = {k: schema["properties"][k] for k in
                                    ("device_id", "boot_id", "seq", "t", "late")}
    assert len(envelopes) >= 7
    first = next(iter(envelopes.values()))
    assert all(e == first for e in envelopes.values())


def test_schemas_catch_mistakes():
    pain = schemas.load("painmon.pain/1")
    good = {"schema": "painmon.pain/1", "device_id": "bed-1", "boot_id": "b", "seq": 1,
            "t": "2026-01-01T00:00:00.000Z", "score": 4.2, "level": "moderate",
            "confidence": 0.8, "contributions": {}, "flags": [], "new_field": 1}
    jsonschema.validate(good, pain)  # fields may be added
    for bad in ({"score": 11}, {"level": "awful"}, {"confidence": -0.1}, {"seq": 0},
                {"schema": "painmon.pain/2"}, {"device_id": "bed/1"}, {"late": False}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**good, **bad}, pain)
    for missing in ("score", "boot_id", "seq"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({k: v for k, v in good.items() if k != missing}, pain)
    result = schemas.load("painmon.command_result/1")
    refused = {"schema": "painmon.command_result/1", "device_id": "d", "boot_id": "b", "seq": 2,
               "t": "2026-01-01T00:00:00Z", "command": "x", "request_id": None, "ok": False}
    with pytest.raises(jsonschema.ValidationError, match="reason"):
        jsonschema.validate(refused, result)


def test_committed_api_reference_and_command_schemas_are_current():
    stale = api_docs.stale_files()
    assert not stale, f"out of date: {stale}; run python -m tools.api_docs"


def test_api_reference_lists_every_schema():
    text = api_docs.API_MD.read_text()
    for path in schemas.all_files():
        assert f"schemas/{path.name}" in text


def test_everything_the_device_publishes_validates(mosquitto, mqtt_probe, tmp_path,
                                                   face_model_dir):
    """The pipeline (face and physio on, 12 s of demo time), its alarms, commands, discovery
    and SenML through a real broker, every message checked; pain and health included when
    the pipeline publishes them."""
    device_id = "bed-api"
    probe = mqtt_probe(mosquitto.host, mosquitto.port, "#")
    config = device_config(mosquitto, tmp_path, device_id, ha_discovery=True, senml=True)
    config = config.model_copy(update={"face": config.face.model_copy(
        update={"enabled": True, "model_dir": face_model_dir})})
    link = MqttLink(config.mqtt, device_id)
    monitor = build_monitor(config, ScaledClock(1.5), [], face_calibrate_frames=10)
    pipeline = monitor.pipeline
    output = mqtt_output(monitor, link)
    link.start()
    try:
        assert link.wait_connected(5)
        alarm = pipeline.alarms.raise_alarm("test_alarm", "api", category="technical",
                                            priority="medium", message="schema check")
        pipeline.run(18.0)
        pipeline.alarms.acknowledge(alarm.id, "nurse")
        pipeline.alarms.clear("test_alarm", "api")
        sender = probe._client
        requests = {"ping": command(request_id="r1", echo="hi"), "nope": command(),
                    "self_report": command(nrs=4), "acknowledge": command(alarm_id="all"),
                    "calibrate": command(duration_s=1), "record": b"not json",
                    "admit": command(reference="api-1"), "analgesia": command(route="iv"),
                    "painad": command(**dict.fromkeys(
                        ("breathing", "negative_vocalization", "facial_expression",
                         "body_language", "consolability"), 1))}
        for name, payload in requests.items():
            sender.publish(f"painmon/{device_id}/cmd/nurse/{name}", payload, qos=1)
        wait_until(lambda: sum(m.topic.endswith("/cmd/result") for m in probe.messages)
                   >= len(requests), 10, "every command answered")
        assert output.sender.wait_idle(10)
        time.sleep(0.3)
    finally:
        pipeline.stop()
        output.stop()
        link.stop()
    checked: dict[str, int] = {}
    for message in probe.messages:
        if message.topic.endswith(tuple(f"/cmd/nurse/{n}" for n in requests)):
            continue  # what the test itself sent
        name = validate(message.topic, message.json() if message.payload else None)
        checked[name] = checked.get(name, 0) + 1
    print("validated:", checked)
    for name in ("painmon.status/1", "painmon.vitals/1", "painmon.face/1", "painmon.alarm/1",
                 "painmon.alarms/1", "painmon.command_result/1", "ha_discovery", "senml",
                 "painmon.ha_state/1"):
        assert checked.get(name, 0) >= 1, (name, checked)
    assert checked["painmon.vitals/1"] >= 8
    assert checked["painmon.alarm/1"] >= 3  # raised, acknowledged, cleared
    assert checked["painmon.command_result/1"] == len(requests)
    assert checked["painmon.scale/1"] == 1  # the painad score, through the outbox
    props = next(m for m in probe.messages if m.topic.endswith("/vitals")).properties
    assert props.ContentType == "application/json"
    assert dict(props.UserProperty)["schema"] == "painmon.vitals/1"
    assert 1 <= props.MessageExpiryInterval <= config.mqtt.live_expiry_s
