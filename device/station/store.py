"""The station's data layer: one SQLAlchemy engine on SQLite (default) or PostgreSQL.

``Store.migrate`` brings the schema to the newest Alembic revision (at every start).
``Store.write`` stores one batch of validated messages in one transaction: every stream row is
keyed by (device, boot id, seq), so a message delivered twice (QoS 1, a shared subscription
handing it to another member after a failure) is stored once, whichever process got it.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from device.station import tables as T

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class Received:
    """One validated message: its device and subtopic (from the topic), body, arrival time."""

    device_id: str
    subtopic: str
    body: dict
    received_unix_s: float


def parse_t(text: str | None, default: float) -> float:
    """``t`` (ISO 8601 UTC, as the schemas require) as epoch seconds."""
    if not text:
        return default
    return datetime.fromisoformat(text).timestamp()  # Python 3.11 reads the "Z"


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            # WAL: the screen reads while ingest writes; NORMAL is durable at each checkpoint
            # and fast enough for 200 beds at 1 Hz.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
        return engine
    return sa.create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


def default_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / 'station.db'}"


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> str:
        """Upgrade the schema to the newest revision; returns it."""
        from alembic import command
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Two station processes starting together must not both create the tables.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(2121)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return ScriptDirectory.from_config(cfg).get_current_head()

    # -- writing -----------------------------------------------------------------------------
    def _insert(self, table: sa.Table):
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table)

    def write(self, batch: list[Received]) -> dict[str, set[tuple[str, int]]]:
        """Store one batch; returns the (device, minute) pairs of pain and vitals it touched."""
        touched: dict[str, set[tuple[str, int]]] = {"pain": set(), "vitals": set()}
        if not batch:
            return touched
        rows: dict[str, list[dict]] = defaultdict(list)
        for msg in batch:
            rows[msg.subtopic].append(_row(msg))
        with self.engine.begin() as conn:
            self._ensure_devices(conn, {m.device_id for m in batch})
            for subtopic, table in (("pain", T.pain), ("vitals", T.vitals),
                                    ("alarm", T.alarm_events), ("cmd/result", T.command_results)):
                if rows[subtopic]:
                    conn.execute(self._insert(table).on_conflict_do_nothing(), rows[subtopic])
            for r in rows["pain"]:
                touched["pain"].add((r["device_id"], int(r["t_unix_s"] // 60 * 60)))
            for r in rows["vitals"]:
                touched["vitals"].add((r["device_id"], int(r["t_unix_s"] // 60 * 60)))
            self._update_latest(conn, batch)
            for r in rows["cmd/result"]:
                if r["request_id"]:
                    conn.execute(
                        T.commands_sent.update()
                        .where(T.commands_sent.c.request_id == r["request_id"],
                               T.commands_sent.c.device_id == r["device_id"],
                               T.commands_sent.c.result_unix_s.is_(None))
                        .values(ok=r["ok"], reason=r["reason"], result=r["result"],
                                result_unix_s=r["received_unix_s"]))
        return touched

    def _ensure_devices(self, conn, device_ids: set[str]) -> None:
        conn.execute(self._insert(T.devices).on_conflict_do_nothing(),
                     [{"device_id": d, "state": "unknown", "rejected": 0} for d in sorted(device_ids)])

    def _update_latest(self, conn, batch: list[Received]) -> None:
        """The devices table holds each bed's newest state by the device's own time. Rows are
        updated in device order: two station processes writing at once lock them in the same
        order, so they wait for each other instead of deadlocking (PostgreSQL)."""
        d = T.devices.c
        seen: dict[str, float] = {}
        status: dict[str, Received] = {}  # the last in arrival order: the broker's order
        newest: dict[tuple[str, str], Received] = {}
        for msg in batch:
            seen[msg.device_id] = max(seen.get(msg.device_id, 0.0), msg.received_unix_s)
            if msg.subtopic == "status":
                status[msg.device_id] = msg
                continue
            key = (msg.device_id, msg.subtopic)
            if key not in newest or _t(msg) >= _t(newest[key]):
                newest[key] = msg
        by_device: dict[str, list[Received]] = {}
        for (device_id, _), msg in newest.items():
            by_device.setdefault(device_id, []).append(msg)
        for device_id in sorted(seen):
            # One UPDATE per bed and batch; each group of columns changes only when the
            # message is newer (by the device's t) than what the row holds.
            values: dict = {}
            if device_id in status:
                body = status[device_id].body
                values.update(state=body["state"], state_unix_s=status[device_id].received_unix_s,
                              boot_id=body["boot_id"], sw_version=body.get("sw_version"))
            for msg in by_device.get(device_id, []):
                update = _latest_values(msg)
                if update is None:
                    continue
                col, fields = update
                t = _t(msg)
                newer = sa.or_(col.is_(None), col <= t)
                values[col.key] = sa.case((newer, t), else_=col)
                for key, value in fields.items():
                    column = T.devices.c[key]
                    values[key] = sa.case((newer, sa.bindparam(None, value, type_=column.type)),
                                          else_=column)
            at = seen[device_id]
            values["last_seen_unix_s"] = sa.case(
                (sa.or_(d.last_seen_unix_s.is_(None), d.last_seen_unix_s < at), at),
                else_=d.last_seen_unix_s)
            conn.execute(T.devices.update().where(d.device_id == device_id).values(values))

    def write_rejected(self, items: Iterable[tuple[float, str, str | None, str, bytes]]) -> None:
        """(received, topic, device_id or None, reason, payload) of refused messages."""
        items = list(items)
        if not items:
            return
        with self.engine.begin() as conn:
            conn.execute(T.rejected.insert(), [
                {"received_unix_s": at, "topic": topic[:256], "device_id": device_id,
                 "reason": reason[:1000], "payload_head": payload[:65536].decode("utf-8", "replace")}
                for at, topic, device_id, reason, payload in items])
            counts: dict[str, int] = defaultdict(int)
            for _, _, device_id, _, _ in items:
                if device_id:
                    counts[device_id] += 1
            for device_id, n in counts.items():
                # Only beds that exist: a forged topic must not add a bed to the ward.
                conn.execute(T.devices.update().where(T.devices.c.device_id == device_id)
                             .values(rejected=T.devices.c.rejected + n))

    # -- commands ----------------------------------------------------------------------------
    def command_sent(self, request_id: str, device_id: str, command: str, payload: dict,
                     username: str) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(T.commands_sent.insert().values(
                request_id=request_id, device_id=device_id, command=command, payload=payload,
                username=username, sent_unix_s=now))
            conn.execute(T.audit.insert().values(
                at_unix_s=now, username=username, action=f"command.{command}",
                device_id=device_id, detail={"request_id": request_id, **payload}))
            # The answer may have come in before this row (a fast device, another process).
            result = conn.execute(sa.select(T.command_results).where(
                T.command_results.c.request_id == request_id,
                T.command_results.c.device_id == device_id)).first()
            if result is not None:
                conn.execute(T.commands_sent.update()
                             .where(T.commands_sent.c.request_id == request_id)
                             .values(ok=result.ok, reason=result.reason, result=result.result,
                                     result_unix_s=result.received_unix_s))

    def command(self, request_id: str):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(T.commands_sent).where(
                T.commands_sent.c.request_id == request_id)).first()


def _latest_values(msg: Received):
    """(time column, values) of the devices row that ``msg`` updates, or None."""
    d, body = T.devices.c, msg.body
    if msg.subtopic == "pain":
        return d.pain_t_unix_s, {"score": body["score"], "level": body["level"],
                                     "confidence": body["confidence"], "pain_flags": body["flags"],
                                     "contributions": body["contributions"]}
    if msg.subtopic == "vitals":
        return d.vitals_t_unix_s, {"hr_bpm": _hr(body), "eda_us": body["eda_us"]}
    if msg.subtopic == "alarms":
        return d.alarms_t_unix_s, {"active_alarms": body["active"], "loudest": body["loudest"]}
    if msg.subtopic == "health":
        return d.health_t_unix_s, {"health": body}
    return None


def _t(msg: Received) -> float:
    return parse_t(msg.body.get("t"), msg.received_unix_s)


def _hr(body: dict) -> float | None:
    fused = (body.get("heart_rate") or {}).get("bpm")
    if fused is not None:
        return fused
    hr = body["hr_bpm"]
    return hr.get("ecg") if hr.get("ecg") is not None else hr.get("ppg")


def _row(msg: Received) -> dict:
    body = msg.body
    if msg.subtopic in ("status", "alarms", "health"):
        return {}
    row = {"device_id": msg.device_id, "boot_id": body["boot_id"], "seq": body["seq"],
           "t_unix_s": _t(msg), "received_unix_s": msg.received_unix_s,
           "late": bool(body.get("late", False))}
    if msg.subtopic == "pain":
        row.update(score=body["score"], raw_score=body.get("raw_score"), level=body["level"],
                   confidence=body["confidence"], flags=body["flags"],
                   contributions=body["contributions"])
    elif msg.subtopic == "vitals":
        physio = body.get("physio") or {}
        row.update(hr_bpm=_hr(body), eda_us=body["eda_us"], motion_g=body["motion_g"],
                   physio_score=physio.get("score"))
    elif msg.subtopic == "alarm":
        row.update(event=body["event"], alarm_id=body["alarm_id"], kind=body["kind"],
                   source=body["source"], category=body["category"], priority=body["priority"],
                   message=body["message"], acknowledged_by=body.get("acknowledged_by"))
    elif msg.subtopic == "cmd/result":
        row.update(command=body["command"], request_id=body["request_id"], ok=body["ok"],
                   reason=body.get("reason"), result=body.get("result"))
    return row
