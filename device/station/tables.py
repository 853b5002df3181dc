"""The station's tables (SQLAlchemy Core); the migrations in ``migrations/`` create them.

Times are UTC seconds since the epoch as doubles (``*_unix_s``): the same on SQLite and
PostgreSQL, cheap to compare and to subtract for lag. ``t_unix_s`` is the device's ``t`` (when
the message was made, kept on replay), ``received_unix_s`` when the station got it: a late
message is stored at its true time and the difference shows how late it was.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_KEY = ("device_id", "boot_id", "seq")


def _envelope() -> list[sa.Column]:
    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("boot_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("t_unix_s", sa.Double, nullable=False),
        sa.Column("received_unix_s", sa.Double, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False, default=False),
    ]


devices = sa.Table(
    "devices", metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False, default="unknown"),  # online/offline
    sa.Column("state_unix_s", sa.Double),
    sa.Column("boot_id", sa.String(64)),
    sa.Column("sw_version", sa.Text),
    sa.Column("last_seen_unix_s", sa.Double),
    # The newest pain estimate by device time (a late replayed one never replaces it).
    sa.Column("pain_t_unix_s", sa.Double),
    sa.Column("score", sa.Double),
    sa.Column("level", sa.String(16)),
    sa.Column("confidence", sa.Double),
    sa.Column("pain_flags", sa.JSON),
    sa.Column("contributions", sa.JSON),
    sa.Column("vitals_t_unix_s", sa.Double),
    sa.Column("hr_bpm", sa.Double),
    sa.Column("eda_us", sa.Double),
    sa.Column("alarms_t_unix_s", sa.Double),
    sa.Column("active_alarms", sa.JSON),
    sa.Column("loudest", sa.String(16)),
    sa.Column("health_t_unix_s", sa.Double),
    sa.Column("health", sa.JSON),
    sa.Column("rejected", sa.Integer, nullable=False, default=0),
)

pain = sa.Table(
    "pain", metadata, *_envelope(),
    sa.Column("score", sa.Double), sa.Column("raw_score", sa.Double),
    sa.Column("level", sa.String(16)), sa.Column("confidence", sa.Double, nullable=False),
    sa.Column("flags", sa.JSON), sa.Column("contributions", sa.JSON),
    sa.UniqueConstraint(*_KEY, name="uq_pain_key"),
    sa.Index("ix_pain_device_t", "device_id", "t_unix_s"),
)

vitals = sa.Table(
    "vitals", metadata, *_envelope(),
    sa.Column("hr_bpm", sa.Double), sa.Column("eda_us", sa.Double),
    sa.Column("motion_g", sa.Double), sa.Column("physio_score", sa.Double),
    sa.UniqueConstraint(*_KEY, name="uq_vitals_key"),
    sa.Index("ix_vitals_device_t", "device_id", "t_unix_s"),
)

alarm_events = sa.Table(
    "alarm_events", metadata, *_envelope(),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("alarm_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # the schema bounds neither
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("category", sa.String(16), nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("acknowledged_by", sa.String(64)),
    sa.UniqueConstraint(*_KEY, name="uq_alarm_events_key"),
    sa.Index("ix_alarm_events_device_t", "device_id", "t_unix_s"),
)

command_results = sa.Table(
    "command_results", metadata, *_envelope(),
    sa.Column("command", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(64)),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("result", sa.JSON),
    sa.UniqueConstraint(*_KEY, name="uq_command_results_key"),
    sa.Index("ix_command_results_request", "request_id"),
    sa.Index("ix_command_results_device_t", "device_id", "t_unix_s"),
)

#: Commands the station sent, and the device's answer once it is in.
commands_sent = sa.Table(
    "commands_sent", metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("command", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("sent_unix_s", sa.Double, nullable=False),
    sa.Column("ok", sa.Boolean),
    sa.Column("reason", sa.Text),
    sa.Column("result", sa.JSON),
    sa.Column("result_unix_s", sa.Double),
    sa.Index("ix_commands_sent_device", "device_id", "sent_unix_s"),
)

#: Minute roll-ups for long trends: kept long after the raw rows are gone.
pain_minutes = sa.Table(
    "pain_minutes", metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("minute_unix_s", sa.BigInteger, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("score_mean", sa.Double), sa.Column("score_max", sa.Double),
    sa.Column("confidence_mean", sa.Double),
)

vitals_minutes = sa.Table(
    "vitals_minutes", metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("minute_unix_s", sa.BigInteger, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("hr_bpm_mean", sa.Double), sa.Column("eda_us_mean", sa.Double),
)

rejected = sa.Table(
    "rejected_messages", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("received_unix_s", sa.Double, nullable=False),
    sa.Column("topic", sa.String(256), nullable=False),
    sa.Column("device_id", sa.String(64)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload_head", sa.Text, nullable=False),
    sa.Index("ix_rejected_t", "received_unix_s"),
)

users = sa.Table(
    "users", metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_unix_s", sa.Double, nullable=False),
)

audit = sa.Table(
    "audit", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("at_unix_s", sa.Double, nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("device_id", sa.String(64)),
    sa.Column("detail", sa.JSON),
    sa.Index("ix_audit_at", "at_unix_s"),
)
