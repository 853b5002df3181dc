"""Minute roll-ups for long trends and retention per kind of data.

A year of 200 beds at 1 Hz is 6.3 billion raw rows per stream; the screen's long trends read
one row per bed and minute instead, and raw rows go after ``retention.raw_days``. A roll-up is
recomputed from the raw rows of that minute whenever a message for it arrives (a late replayed
one too), so it is the same whichever station process stored which row.
"""

from __future__ import annotations

import time
from collections import defaultdict

import sqlalchemy as sa

from device.station import tables as T
from device.station.config import RetentionConfig
from device.station.store import Store


def roll_up(store: Store, touched: dict[str, set[tuple[str, int]]]) -> int:
    """Recompute the minute roll-ups of the (device, minute) pairs touched; rows written."""
    written = 0
    for stream, raw, minutes, fields in (
            ("pain", T.pain, T.pain_minutes, ("score", "confidence")),
            ("vitals", T.vitals, T.vitals_minutes, ("hr_bpm", "eda_us"))):
        by_minute: dict[int, set[str]] = defaultdict(set)
        for device_id, minute in touched.get(stream, ()):
            by_minute[minute].add(device_id)
        for minute, device_ids in sorted(by_minute.items()):
            with store.engine.begin() as conn:
                rows = conn.execute(
                    sa.select(raw.c.device_id, *(raw.c[f] for f in fields))
                    .where(raw.c.device_id.in_(sorted(device_ids)),
                           raw.c.t_unix_s >= minute, raw.c.t_unix_s < minute + 60)).all()
                values = [_aggregate(stream, device_id, minute, [r for r in rows
                                                                 if r.device_id == device_id])
                          for device_id in sorted({r.device_id for r in rows})]
                if values:
                    stmt = store._insert(minutes)
                    update = {c: stmt.excluded[c] for c in values[0] if c not in
                              ("device_id", "minute_unix_s")}
                    conn.execute(stmt.on_conflict_do_update(
                        index_elements=["device_id", "minute_unix_s"], set_=update), values)
                    written += len(values)
    return written


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _aggregate(stream: str, device_id: str, minute: int, rows: list) -> dict:
    out = {"device_id": device_id, "minute_unix_s": minute, "n": len(rows)}
    if stream == "pain":
        scores = [r.score for r in rows if r.score is not None]
        out.update(score_mean=_mean(scores), score_max=max(scores) if scores else None,
                   confidence_mean=_mean([r.confidence for r in rows]))
    else:
        out.update(hr_bpm_mean=_mean([r.hr_bpm for r in rows]),
                   eda_us_mean=_mean([r.eda_us for r in rows]))
    return out


def apply_retention(store: Store, retention: RetentionConfig, now_unix_s: float | None = None) -> dict:
    """Delete what is older than its retention; rows deleted per table. The audit trail is
    kept: who acknowledged what is part of the clinical record."""
    now = time.time() if now_unix_s is None else now_unix_s
    day = 86400.0
    plan = ((T.pain, T.pain.c.t_unix_s, retention.pain_raw_days),
            (T.vitals, T.vitals.c.t_unix_s, retention.vitals_raw_days),
            (T.alarm_events, T.alarm_events.c.t_unix_s, retention.alarm_days),
            (T.command_results, T.command_results.c.t_unix_s, retention.command_days),
            (T.commands_sent, T.commands_sent.c.sent_unix_s, retention.command_days),
            (T.pain_minutes, T.pain_minutes.c.minute_unix_s, retention.minutes_days),
            (T.vitals_minutes, T.vitals_minutes.c.minute_unix_s, retention.minutes_days),
            (T.rejected, T.rejected.c.received_unix_s, retention.rejected_days))
    deleted = {}
    with store.engine.begin() as conn:
        for table, column, days in plan:
            deleted[table.name] = conn.execute(
                table.delete().where(column < now - days * day)).rowcount
    return deleted
