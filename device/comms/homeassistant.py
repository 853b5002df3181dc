"""Home Assistant MQTT discovery: the device shows up in Home Assistant with no YAML.

One retained device-based discovery config on ``<discovery_prefix>/device/painmon_<device_id>/
config`` carries the device, the origin, the availability and every entity (``components``,
each with its ``platform``), as Home Assistant has accepted since 2024.11. Every entity reads
the device's ``ha`` topic (``device/comms/ha_state.py``: a compact state published at a pace the
recorder can keep, never from the outbox's late replays) and suggests its entity id with
``default_entity_id`` (``object_id`` is deprecated since 2025.10 and ignored from 2026.4).
The buttons publish the device's own command payloads on ``cmd/acknowledge`` and
``cmd/calibrate``. Availability follows the retained status message (``value_json.state``).

Before 2026 every entity had its own config on ``<discovery_prefix>/<component>/<device_id>/
<object_id>/config``. Those topics are handed over as Home Assistant documents it: a
``migrate_discovery`` request on each (the entity is unloaded but stays in the registry with
its history and settings), then the device config (same unique ids), then an empty retained
payload that clears the old config from the broker. On a Home Assistant that never saw them
both are no-ops.

Home Assistant announces its own restarts with ``online`` on ``<discovery_prefix>/status``;
the config is then published again, as its documentation asks of integrations.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from device.processing.health import PRIORITY as TECHNICAL_PRIORITY

#: Keys every component must carry (Home Assistant refuses an entity without a unique_id).
REQUIRED_KEYS = ("platform", "name", "unique_id", "default_entity_id")
HA_SUBTOPIC = "ha"
#: Where a button's command template puts the time of the press.
SENT_AT = "<sent-at>"
#: Home Assistant's buttons send as a carer: the broker's ACL gives its MQTT user the nurse
#: role's command topics (cmd/nurse/...), see systemd/mosquitto/.
#: The technical problems a household can act on, one binary sensor each: the sensor-level
#: alarms of ``device.processing.health``, the camera's (``camera_missing``) read from the
#: health message's camera state, which raises and clears it.
TECHNICAL_KINDS = tuple(k for k in TECHNICAL_PRIORITY if k != "camera_missing") + ("camera",)
PROBLEM_NAMES = {"sensor_missing": "Sensor missing", "fifo_stuck": "Sensor stuck",
                 "reader_crash": "Sensor reader crashed", "finger_off": "Finger off",
                 "lead_off": "ECG lead off", "gsr_open": "Skin electrodes off",
                 "camera": "Camera unavailable"}
#: What the pre-2026 per-entity configs were called (handed over, then cleared).
LEGACY_OBJECTS = (("sensor", "pain_score"), ("sensor", "pain_level"),
                  ("sensor", "pain_confidence"), ("sensor", "heart_rate"), ("sensor", "eda"),
                  ("binary_sensor", "alarm"))


@dataclass(frozen=True)
class Entity:
    platform: str  # sensor | binary_sensor | button
    key: str  # component id in the device config; the entity id ends with it
    name: str
    options: tuple[tuple[str, object], ...] = ()


#: What a family can put right themselves (a sensor slipped off) is shown with the readings;
#: the rest (a chip or the camera gone) needs service and sits with the diagnostics.
CONTACT_KINDS = ("finger_off", "lead_off", "gsr_open")


def _problem(key: str) -> Entity:
    category = () if key in CONTACT_KINDS else (("entity_category", "diagnostic"),)
    # The alarm's message as the "reason" attribute: an automation can say what slipped.
    return Entity("binary_sensor", key, PROBLEM_NAMES[key], (
        ("device_class", "problem"), *category,
        ("value_template", f"{{{{ 'ON' if value_json.problems.{key} else 'OFF' }}}}"),
        ("json_attributes_topic", HA_SUBTOPIC),
        ("json_attributes_template",
         f"{{{{ {{'reason': value_json.problems.{key}}} | tojson }}}}")))


ENTITIES = (
    Entity("sensor", "pain_score", "Pain score", (
        ("value_template", "{{ value_json.score }}"), ("state_class", "measurement"),
        ("suggested_display_precision", 1), ("icon", "mdi:emoticon-sad-outline"))),
    Entity("sensor", "pain_level", "Pain level", (
        ("value_template", "{{ value_json.level }}"), ("device_class", "enum"),
        ("options", ["none", "mild", "moderate", "severe"]))),
    Entity("binary_sensor", "pain_alarm", "Pain alarm", (
        ("value_template", "{{ 'ON' if value_json.pain_alarm else 'OFF' }}"),
        ("device_class", "problem"), ("icon", "mdi:alarm-light"))),
    Entity("binary_sensor", "alarm", "Alarm", (
        ("value_template", "{{ 'ON' if value_json.alarm else 'OFF' }}"),
        ("device_class", "problem"))),
    Entity("sensor", "pain_confidence", "Pain confidence", (
        ("value_template", "{{ value_json.confidence_pct }}"), ("unit_of_measurement", "%"),
        ("state_class", "measurement"), ("entity_category", "diagnostic"))),
    Entity("sensor", "signal_quality", "Signal quality", (
        ("value_template", "{{ value_json.quality_pct }}"), ("unit_of_measurement", "%"),
        ("state_class", "measurement"), ("entity_category", "diagnostic"),
        ("icon", "mdi:signal"))),
    Entity("sensor", "heart_rate", "Heart rate", (
        ("value_template", "{{ value_json.hr_bpm }}"), ("unit_of_measurement", "bpm"),
        ("state_class", "measurement"), ("icon", "mdi:heart-pulse"))),
    Entity("sensor", "eda", "Skin conductance", (
        ("value_template", "{{ value_json.eda_us }}"), ("unit_of_measurement", "µS"),
        ("state_class", "measurement"), ("suggested_display_precision", 2),
        ("icon", "mdi:water-percent"))),
    Entity("sensor", "motion", "Motion", (
        ("value_template", "{{ value_json.motion_g }}"), ("unit_of_measurement", "g"),
        ("state_class", "measurement"), ("suggested_display_precision", 2),
        ("icon", "mdi:run"))),
    *(_problem(kind) for kind in TECHNICAL_KINDS),
    # The buttons send what any other client would: the command payloads of device/schemas.
    Entity("button", "acknowledge", "Acknowledge alarms", (
        ("command_topic", "cmd/nurse/acknowledge"), ("icon", "mdi:bell-check"),
        ("payload_press", {"schema": "painmon.command.acknowledge/1", "alarm_id": "all",
                           "by": "home-assistant"}))),
    Entity("sensor", "stay", "Stay", (
        ("value_template", "{{ value_json.stay if value_json.stay else 'none' }}"),
        ("icon", "mdi:bed"), ("entity_category", "diagnostic"))),
    Entity("binary_sensor", "reassessment_due", "Pain reassessment due", (
        ("value_template", "{{ 'ON' if value_json.reassessment_due else 'OFF' }}"),
        ("icon", "mdi:clipboard-pulse-outline"))),
    Entity("button", "dose_oral", "Oral dose given", (
        ("command_topic", "cmd/nurse/analgesia"), ("icon", "mdi:pill"),
        ("payload_press", {"schema": "painmon.command.analgesia/1", "route": "oral"}))),
    Entity("button", "calibrate", "Start calibration", (
        ("command_topic", "cmd/nurse/calibrate"), ("icon", "mdi:tune-variant"),
        ("entity_category", "config"),
        ("payload_press", {"schema": "painmon.command.calibrate/1"}))),
)


def entity_slug(device_id: str) -> str:
    """The device part of the entity ids Home Assistant would make: lower case, ``_`` only."""
    return re.sub(r"[^a-z0-9]+", "_", device_id.lower()).strip("_")


def default_entity_id(device_id: str, entity: Entity) -> str:
    return f"{entity.platform}.painmon_{entity_slug(device_id)}_{entity.key}"


def discovery_topic(device_id: str, discovery_prefix: str = "homeassistant") -> str:
    return f"{discovery_prefix}/device/painmon_{device_id}/config"


def discovery_config(*, device_id: str, base_topic: str, sw_version: str = "",
                     model: str = "painmon") -> dict:
    """The device-based discovery config of one device (a JSON object)."""
    components = {}
    for entity in ENTITIES:
        component = {"platform": entity.platform, "name": entity.name,
                     "unique_id": f"painmon_{device_id}_{entity.key}",
                     "default_entity_id": default_entity_id(device_id, entity), "qos": 1}
        for key, value in entity.options:
            if key in ("command_topic", "json_attributes_topic"):
                value = f"{base_topic}/{value}"
            elif key == "payload_press":
                # Home Assistant stamps each press with the time it was sent, which the device
                # needs to refuse a stale command (its button template, rendered at the press).
                component["command_template"] = json.dumps(
                    {**value, "t": SENT_AT}, separators=(",", ":")).replace(
                        f'"{SENT_AT}"', '"{{ utcnow().isoformat() }}"')
                value = json.dumps(value, separators=(",", ":"))
            component[key] = value
        components[entity.key] = component
    return {
        "device": {"identifiers": [f"painmon_{device_id}"], "name": f"painmon {device_id}",
                   "manufacturer": "painmon", "model": model, "sw_version": sw_version},
        "origin": {"name": "painmon", "sw_version": sw_version},
        "state_topic": f"{base_topic}/{HA_SUBTOPIC}",
        "availability": [{"topic": f"{base_topic}/status",
                          "value_template": "{{ value_json.state }}",
                          "payload_available": "online", "payload_not_available": "offline"}],
        "availability_mode": "all",
        "components": components,
    }


def discovery_messages(*, device_id: str, base_topic: str, discovery_prefix: str = "homeassistant",
                       sw_version: str = "", model: str = "painmon"
                       ) -> list[tuple[str, bytes, bool]]:
    """``(topic, payload, retain)`` in the order to publish: the legacy hand-over requests,
    the device config, then the legacy configs cleared."""
    legacy = [f"{discovery_prefix}/{platform}/{device_id}/{key}/config"
              for platform, key in LEGACY_OBJECTS]
    config = discovery_config(device_id=device_id, base_topic=base_topic,
                              sw_version=sw_version, model=model)
    return ([(t, b'{"migrate_discovery":true}', False) for t in legacy]
            + [(discovery_topic(device_id, discovery_prefix), json.dumps(config).encode(), True)]
            + [(t, b"", True) for t in legacy])


def is_birth(payload: bytes) -> bool:
    """Home Assistant's birth message on ``<discovery_prefix>/status``."""
    return payload.strip() == b"online"
