"""Home Assistant MQTT discovery: the device shows up in Home Assistant with no YAML.

Each entity is one retained config message on
``<discovery_prefix>/<component>/<device_id>/<object_id>/config`` (Home Assistant's MQTT
discovery format). The entities read the device's public topics with a ``value_template`` on
the JSON payloads and share one ``device`` block, and all follow availability from the retained
status message (``value_json.state`` is ``online`` or ``offline``). Home Assistant announces its
own restarts with ``online`` on ``<discovery_prefix>/status``; the configs are then published
again, as its documentation asks of integrations.

A ``null`` score renders as ``None``, which Home Assistant's MQTT sensor shows as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The documented shape of a discovery config (the keys every painmon entity must carry).
REQUIRED_KEYS = ("name", "unique_id", "state_topic", "availability", "device", "origin")


@dataclass(frozen=True)
class Entity:
    component: str  # "sensor" | "binary_sensor"
    object_id: str
    name: str
    subtopic: str
    value_template: str
    extra: tuple[tuple[str, object], ...] = ()


ENTITIES = (
    Entity("sensor", "pain_score", "Pain score", "pain", "{{ value_json.score }}",
           (("state_class", "measurement"), ("suggested_display_precision", 1),
            ("icon", "mdi:emoticon-sad-outline"))),
    Entity("sensor", "pain_level", "Pain level", "pain", "{{ value_json.level }}",
           (("device_class", "enum"), ("options", ["none", "mild", "moderate", "severe"]))),
    Entity("sensor", "pain_confidence", "Pain confidence", "pain",
           "{{ (value_json.confidence * 100) | round(0) }}",
           (("unit_of_measurement", "%"), ("state_class", "measurement"),
            ("entity_category", "diagnostic"))),
    Entity("sensor", "heart_rate", "Heart rate", "vitals",
           "{{ value_json.hr_bpm.ppg if value_json.hr_bpm.ppg is not none "
           "else value_json.hr_bpm.ecg }}",
           (("unit_of_measurement", "bpm"), ("state_class", "measurement"),
            ("icon", "mdi:heart-pulse"), ("expire_after", 30))),
    Entity("sensor", "eda", "Skin conductance", "vitals", "{{ value_json.eda_us }}",
           (("unit_of_measurement", "µS"), ("state_class", "measurement"),
            ("suggested_display_precision", 2), ("expire_after", 30))),
    Entity("binary_sensor", "alarm", "Alarm", "alarms",
           "{{ 'ON' if value_json.active | length > 0 else 'OFF' }}",
           (("device_class", "problem"), ("payload_on", "ON"), ("payload_off", "OFF"),
            ("json_attributes_topic", None))),
)


def discovery_messages(*, device_id: str, base_topic: str, discovery_prefix: str = "homeassistant",
                       sw_version: str = "", model: str = "painmon") -> list[tuple[str, dict]]:
    """``(topic, payload)`` of every retained discovery config for one device."""
    device = {"identifiers": [f"painmon_{device_id}"], "name": f"painmon {device_id}",
              "manufacturer": "painmon", "model": model, "sw_version": sw_version}
    availability = [{"topic": f"{base_topic}/status", "value_template": "{{ value_json.state }}",
                     "payload_available": "online", "payload_not_available": "offline"}]
    origin = {"name": "painmon", "sw_version": sw_version}
    out = []
    for entity in ENTITIES:
        state_topic = f"{base_topic}/{entity.subtopic}"
        payload = {
            "name": entity.name,
            "unique_id": f"painmon_{device_id}_{entity.object_id}",
            "object_id": f"painmon_{device_id}_{entity.object_id}",
            "state_topic": state_topic,
            "value_template": entity.value_template,
            "availability": availability,
            "availability_mode": "all",
            "device": device,
            "origin": origin,
            "qos": 1,
        }
        for key, value in entity.extra:
            payload[key] = state_topic if key == "json_attributes_topic" else value
        topic = f"{discovery_prefix}/{entity.component}/{device_id}/{entity.object_id}/config"
        out.append((topic, payload))
    return out


def is_birth(payload: bytes) -> bool:
    """Home Assistant's birth message on ``<discovery_prefix>/status``."""
    return payload.strip() == b"online"
