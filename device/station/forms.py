"""The bed view's forms for what a nurse enters for a bed: a PAINAD or CPOT score and an
analgesic dose.

Each form is drawn from the command's published schema (its fields, their descriptions, the
allowed values) and what it sends is checked with the device's own request model before it
goes out, so a form the device would refuse is refused at the station at once, with the reason
the device would give (a CPOT needs exactly one of its two fourth items, say). The request id,
the schema and the time are the station's to set.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from device.care.bedside import AnalgesiaRequest
from device.care.scales import SCALES
from device.processing.commands import CommandRequest, refusal_reason
from device.station.api import published_schema

#: command -> its form's title
TITLES = {"painad": "PAINAD (advanced dementia)", "cpot": "CPOT (critical care)",
          "analgesia": "Analgesic dose"}
_STATION_SETS = ("request_id", "schema", "t")


#: command -> the device's request model, which checks what the form sends
REQUEST_MODELS: dict[str, type[CommandRequest]] = {
    **{scale: model for scale, (model, _) in SCALES.items()}, "analgesia": AnalgesiaRequest}


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    help: str
    required: bool
    kind: str  # "int" or "number" (sent as numbers), "text" (sent as it is)
    options: tuple[str, ...] = ()  # a choice among these; none: a number field
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Form:
    command: str
    title: str
    fields: tuple[Field, ...]


def _field(name: str, prop: dict, required: bool) -> Field:
    value = next((v for v in prop.get("anyOf", [prop]) if v.get("type") != "null"), prop)
    label = name.replace("_", " ").capitalize()
    help_text = prop.get("description", "")
    if "enum" in value:
        return Field(name, label, help_text, required, "text", tuple(map(str, value["enum"])))
    low, high = value.get("minimum"), value.get("maximum")
    if value.get("type") == "integer" and low is not None and high is not None and high - low <= 10:
        return Field(name, label, help_text, required, "int",
                     tuple(str(i) for i in range(int(low), int(high) + 1)))
    return Field(name, label, help_text, required,
                 "int" if value.get("type") == "integer" else "number", (), low, high)


def forms() -> list[Form]:
    """The forms, in the order the bed view shows them."""
    out = []
    for command, title in TITLES.items():
        schema = published_schema(f"painmon.command.{command}/1")
        required = set(schema.get("required", ()))
        out.append(Form(command, title, tuple(
            _field(name, prop, name in required) for name, prop in schema["properties"].items()
            if name not in _STATION_SETS)))
    return out


def check(command: str, body: dict) -> dict | str:
    """The payload to send for ``command``, or why the station refuses it."""
    model = REQUEST_MODELS.get(command)
    if model is None:
        return f"no form for {command[:64]!r} (known: {', '.join(TITLES)})"
    if not isinstance(body, dict):
        return "payload: a JSON object is needed"
    taken = [k for k in _STATION_SETS if k in body]
    if taken:
        return f"{', '.join(taken)}: set by the station, not by the form"
    try:
        model.model_validate(body, strict=True)
    except ValidationError as exc:
        return refusal_reason(exc)
    return body
