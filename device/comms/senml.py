"""SenML (RFC 8428) packs of the numeric values, for consumers that speak SenML, not our JSON.

One pack per message: the base name ``urn:dev:painmon:<device_id>:`` and the base time (the
message's ``t`` as seconds since the epoch) on the first record, then one record per value
that is present. Units are SenML's registered ones (RFC 8428 section 12.1): ``beat/min`` for
heart rate, ``S`` (siemens) for skin conductance, ``m/s2`` for motion, ``/`` for a ratio;
the pain score is a number without a unit.
"""

from __future__ import annotations

from datetime import datetime

CONTENT_TYPE = "application/senml+json"
STANDARD_GRAVITY_M_S2 = 9.80665


def _epoch_s(t: str | None) -> float | None:
    if not t:
        return None
    try:
        return datetime.fromisoformat(t).timestamp()
    except ValueError:
        return None


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def to_senml(device_id: str, topic: str, message: dict) -> list[dict] | None:
    """The pack for a vitals or pain message; None when it has no numeric values."""
    values: list[tuple[str, str | None, float | None]] = []
    if topic == "vitals":
        hr = message.get("hr_bpm") or {}
        for source in ("ppg", "ecg"):
            values.append((f"hr_{source}", "beat/min", _number(hr.get(source))))
        eda_us = _number(message.get("eda_us"))
        values.append(("eda", "S", None if eda_us is None else eda_us * 1e-6))
        motion_g = _number(message.get("motion_g"))
        values.append(("motion", "m/s2",
                       None if motion_g is None else motion_g * STANDARD_GRAVITY_M_S2))
    elif topic == "pain":
        values.append(("pain_score", None, _number(message.get("score"))))
        values.append(("pain_confidence", "/", _number(message.get("confidence"))))
    records = []
    for name, unit, value in values:
        if value is None:
            continue
        record: dict = {"n": name, "v": round(value, 9)}
        if unit is not None:
            record["u"] = unit
        records.append(record)
    if not records:
        return None
    records[0]["bn"] = f"urn:dev:painmon:{device_id}:"
    bt = _epoch_s(message.get("t"))
    if bt is not None:
        records[0]["bt"] = round(bt, 3)
    return records
