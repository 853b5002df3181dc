"""The station's tables

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alarm_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('boot_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('t_unix_s', sa.Double(), nullable=False),
    sa.Column('received_unix_s', sa.Double(), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('alarm_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('acknowledged_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id', 'boot_id', 'seq', name='uq_alarm_events_key')
    )
    with op.batch_alter_table('alarm_events', schema=None) as batch_op:
        batch_op.create_index('ix_alarm_events_device_t', ['device_id', 't_unix_s'], unique=False)

    op.create_table('audit',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at_unix_s', sa.Double(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.create_index('ix_audit_at', ['at_unix_s'], unique=False)

    op.create_table('command_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('boot_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('t_unix_s', sa.Double(), nullable=False),
    sa.Column('received_unix_s', sa.Double(), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('command', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id', 'boot_id', 'seq', name='uq_command_results_key')
    )
    with op.batch_alter_table('command_results', schema=None) as batch_op:
        batch_op.create_index('ix_command_results_device_t', ['device_id', 't_unix_s'], unique=False)
        batch_op.create_index('ix_command_results_request', ['request_id'], unique=False)

    op.create_table('commands_sent',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('command', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('sent_unix_s', sa.Double(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('result_unix_s', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('request_id')
    )
    with op.batch_alter_table('commands_sent', schema=None) as batch_op:
        batch_op.create_index('ix_commands_sent_device', ['device_id', 'sent_unix_s'], unique=False)

    op.create_table('devices',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_unix_s', sa.Double(), nullable=True),
    sa.Column('boot_id', sa.String(length=64), nullable=True),
    sa.Column('sw_version', sa.Text(), nullable=True),
    sa.Column('last_seen_unix_s', sa.Double(), nullable=True),
    sa.Column('pain_t_unix_s', sa.Double(), nullable=True),
    sa.Column('score', sa.Double(), nullable=True),
    sa.Column('level', sa.String(length=16), nullable=True),
    sa.Column('confidence', sa.Double(), nullable=True),
    sa.Column('pain_flags', sa.JSON(), nullable=True),
    sa.Column('contributions', sa.JSON(), nullable=True),
    sa.Column('vitals_t_unix_s', sa.Double(), nullable=True),
    sa.Column('hr_bpm', sa.Double(), nullable=True),
    sa.Column('eda_us', sa.Double(), nullable=True),
    sa.Column('alarms_t_unix_s', sa.Double(), nullable=True),
    sa.Column('active_alarms', sa.JSON(), nullable=True),
    sa.Column('loudest', sa.String(length=16), nullable=True),
    sa.Column('health_t_unix_s', sa.Double(), nullable=True),
    sa.Column('health', sa.JSON(), nullable=True),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('device_id')
    )
    op.create_table('pain',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('boot_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('t_unix_s', sa.Double(), nullable=False),
    sa.Column('received_unix_s', sa.Double(), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('score', sa.Double(), nullable=True),
    sa.Column('raw_score', sa.Double(), nullable=True),
    sa.Column('level', sa.String(length=16), nullable=True),
    sa.Column('confidence', sa.Double(), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=True),
    sa.Column('contributions', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id', 'boot_id', 'seq', name='uq_pain_key')
    )
    with op.batch_alter_table('pain', schema=None) as batch_op:
        batch_op.create_index('ix_pain_device_t', ['device_id', 't_unix_s'], unique=False)

    op.create_table('pain_minutes',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('minute_unix_s', sa.BigInteger(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('score_mean', sa.Double(), nullable=True),
    sa.Column('score_max', sa.Double(), nullable=True),
    sa.Column('confidence_mean', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('device_id', 'minute_unix_s')
    )
    op.create_table('rejected_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('received_unix_s', sa.Double(), nullable=False),
    sa.Column('topic', sa.String(length=256), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload_head', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rejected_messages', schema=None) as batch_op:
        batch_op.create_index('ix_rejected_t', ['received_unix_s'], unique=False)

    op.create_table('users',
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_unix_s', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('username')
    )
    op.create_table('vitals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('boot_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('t_unix_s', sa.Double(), nullable=False),
    sa.Column('received_unix_s', sa.Double(), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('hr_bpm', sa.Double(), nullable=True),
    sa.Column('eda_us', sa.Double(), nullable=True),
    sa.Column('motion_g', sa.Double(), nullable=True),
    sa.Column('physio_score', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id', 'boot_id', 'seq', name='uq_vitals_key')
    )
    with op.batch_alter_table('vitals', schema=None) as batch_op:
        batch_op.create_index('ix_vitals_device_t', ['device_id', 't_unix_s'], unique=False)

    op.create_table('vitals_minutes',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('minute_unix_s', sa.BigInteger(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('hr_bpm_mean', sa.Double(), nullable=True),
    sa.Column('eda_us_mean', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('device_id', 'minute_unix_s')
    )


def downgrade() -> None:
    op.drop_table('vitals_minutes')
    with op.batch_alter_table('vitals', schema=None) as batch_op:
        batch_op.drop_index('ix_vitals_device_t')

    op.drop_table('vitals')
    op.drop_table('users')
    with op.batch_alter_table('rejected_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_rejected_t')

    op.drop_table('rejected_messages')
    op.drop_table('pain_minutes')
    with op.batch_alter_table('pain', schema=None) as batch_op:
        batch_op.drop_index('ix_pain_device_t')

    op.drop_table('pain')
    op.drop_table('devices')
    with op.batch_alter_table('commands_sent', schema=None) as batch_op:
        batch_op.drop_index('ix_commands_sent_device')

    op.drop_table('commands_sent')
    with op.batch_alter_table('command_results', schema=None) as batch_op:
        batch_op.drop_index('ix_command_results_request')
        batch_op.drop_index('ix_command_results_device_t')

    op.drop_table('command_results')
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_at')

    op.drop_table('audit')
    with op.batch_alter_table('alarm_events', schema=None) as batch_op:
        batch_op.drop_index('ix_alarm_events_device_t')

    op.drop_table('alarm_events')
