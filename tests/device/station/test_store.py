"""The data layer on SQLite and PostgreSQL: migrations, retention, roll-ups."""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from device.station import tables as T
from device.station.config import RetentionConfig
from device.station.store import Received
from device.station.upkeep import apply_retention, roll_up


def pain(device_id: str, seq: int, t_unix_s: float, score: float) -> Received:
    from tools.bench.ward_sim import iso

    return Received(device_id, "pain", {
        "schema": "painmon.pain/1", "device_id": device_id, "boot_id": "b1", "seq": seq,
        "t": iso(t_unix_s), "score": score, "level": "mild", "confidence": 0.5,
        "contributions": {}, "flags": []}, t_unix_s)


def test_migrations_build_exactly_the_tables_and_run_again_as_a_no_op(store):
    assert store.migrate() == "0001"  # already at head: nothing to do, no error
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), T.metadata)
    assert diff == []


def test_retention_per_kind_and_the_audit_trail_kept(store):
    now = time.time()
    day = 86400
    store.write([pain("bed-1", 1, now - 10 * day, 3.0), pain("bed-1", 2, now - 1 * day, 4.0)])
    roll_up(store, {"pain": {("bed-1", int((now - 10 * day) // 60 * 60)),
                             ("bed-1", int((now - day) // 60 * 60))}})
    store.command_sent("r1", "bed-1", "acknowledge", {"alarm_id": "1"}, "nurse-ann")
    with store.engine.begin() as conn:
        conn.execute(T.audit.update().values(at_unix_s=now - 1000 * day))
    deleted = apply_retention(store, RetentionConfig(pain_raw_days=7), now)
    assert deleted["pain"] == 1 and deleted["pain_minutes"] == 0
    with store.engine.connect() as conn:
        assert [r.seq for r in conn.execute(sa.select(T.pain))] == [2]
        assert conn.execute(sa.select(sa.func.count()).select_from(T.pain_minutes)).scalar() == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(T.audit)).scalar() == 1


def test_a_minute_roll_up_is_recomputed_when_a_late_message_lands_in_it(store):
    minute = int(time.time() // 60 * 60) - 600
    store.write([pain("bed-2", 1, minute + 1, 2.0), pain("bed-2", 2, minute + 2, 4.0)])
    roll_up(store, {"pain": {("bed-2", minute)}})
    store.write([pain("bed-2", 3, minute + 30, 9.0)])
    store.write([pain("bed-2", 3, minute + 30, 9.0)])  # delivered twice: one row
    roll_up(store, {"pain": {("bed-2", minute)}})
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(T.pain_minutes)).one()
    assert (row.n, row.score_mean, row.score_max) == (3, 5.0, 9.0)
