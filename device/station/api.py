"""The published MQTT API as the station reads it: topics, schemas, the de-duplication key.

Every schema comes through ``published_schema`` (one place to change if the schemas move).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from jsonschema import Draft202012Validator, FormatChecker


def published_schema(schema_name: str) -> dict:
    """The JSON Schema of ``painmon.<name>/<major>`` as the device package publishes it."""
    from device.comms.schemas import load

    return load(schema_name)


@dataclass(frozen=True)
class Subtopic:
    """One subtopic the station reads: ``<prefix>/<device_id>/<name>``."""

    name: str
    schema: str
    #: Retained state (status, alarms, health): every station process reads all of it, because
    #: MQTT 5 sends no retained messages on shared subscriptions and the writes are idempotent.
    retained: bool


SUBTOPICS = {s.name: s for s in (
    Subtopic("pain", "painmon.pain/1", retained=False),
    Subtopic("vitals", "painmon.vitals/1", retained=False),
    Subtopic("alarm", "painmon.alarm/1", retained=False),
    Subtopic("cmd/result", "painmon.command_result/1", retained=False),
    Subtopic("status", "painmon.status/1", retained=True),
    Subtopic("alarms", "painmon.alarms/1", retained=True),
    # ``health`` is left out: its technical alarms reach the screen as alarms (the retained
    # ``alarms`` list and the events), and reading its once-a-second retained copy in every
    # process would double the writes for nothing the screen shows.
)}


def subscriptions(prefix: str, group: str | None) -> list[str]:
    """Topic filters for one station process: shared for the streams, direct for the state."""
    out = []
    for sub in SUBTOPICS.values():
        topic = f"{prefix}/+/{sub.name}"
        out.append(topic if sub.retained or not group else f"$share/{group}/{topic}")
    return out


def split_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """(device_id, subtopic) of ``<prefix>/<device_id>/<subtopic>``; None for other topics."""
    if not topic.startswith(prefix + "/"):
        return None
    device_id, _, name = topic[len(prefix) + 1:].partition("/")
    if not device_id or name not in SUBTOPICS:
        return None
    return device_id, name


@cache
def validator(schema_name: str) -> Draft202012Validator:
    schema = published_schema(schema_name)
    return Draft202012Validator(schema, format_checker=FormatChecker())


#: The station sends for its nurses: the broker's ACL gives its MQTT user the nurse role's
#: command topics (systemd/mosquitto/); who pressed is in the station's own audit trail.
COMMAND_ROLE = "nurse"


def command_topic(prefix: str, device_id: str, command: str, role: str = COMMAND_ROLE) -> str:
    return f"{prefix}/{device_id}/cmd/{role}/{command}"


ACKNOWLEDGE_SCHEMA = "painmon.command.acknowledge/1"
