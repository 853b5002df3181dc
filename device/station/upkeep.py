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
    """Recompute the minute roll-ups of the (device, minute) pairs touched, in SQL (one
    INSERT ... SELECT ... GROUP BY per minute and stream); the number of roll-ups written."""
    done = 0
    for stream, raw, minutes in (("pain", T.pain, T.pain_minutes),
                                 ("vitals", T.vitals, T.vitals_minutes)):
        by_minute: dict[int, set[str]] = defaultdict(set)
        for device_id, minute in touched.get(stream, ()):
            by_minute[minute].add(device_id)
        r = raw.c
        if stream == "pain":
            aggregates = [sa.func.avg(r.score), sa.func.max(r.score), sa.func.avg(r.confidence)]
            names = ["score_mean", "score_max", "confidence_mean"]
        else:
            aggregates = [sa.func.avg(r.hr_bpm), sa.func.avg(r.eda_us)]
            names = ["hr_bpm_mean", "eda_us_mean"]
        for minute, device_ids in sorted(by_minute.items()):
            select = (sa.select(r.device_id, sa.literal(minute, sa.BigInteger),
                                sa.func.count(), *aggregates)
                      .where(r.device_id.in_(sorted(device_ids)), r.t_unix_s >= minute,
                             r.t_unix_s < minute + 60)
                      .group_by(r.device_id))
            stmt = store._insert(minutes).from_select(
                ["device_id", "minute_unix_s", "n", *names], select)
            stmt = stmt.on_conflict_do_update(
                index_elements=["device_id", "minute_unix_s"],
                set_={c: stmt.excluded[c] for c in ["n", *names]})
            with store.engine.begin() as conn:
                conn.execute(stmt)
            done += len(device_ids)
    return done


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
