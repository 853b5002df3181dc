"""Ingest against a real mosquitto, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa

from tests.device.station.conftest import wait_for
from tools.bench.ward_sim import SimulatedBed

from device.station import tables as T


def rows(store, table, **where):
    with store.engine.connect() as conn:
        query = sa.select(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return conn.execute(query).all()


def device(store, device_id):
    found = rows(store, T.devices, device_id=device_id)
    return found[0] if found else None


def raw_publish(broker, topic: str, payload: bytes, retain: bool = False) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_a_bed_is_stored_with_its_state(ingest, store, mosquitto):
    bed = SimulatedBed(mosquitto.host, mosquitto.port, "bed-1").start()
    try:
        for i in range(3):
            bed.hop(score=2.0 + i)
        wait_for(lambda: len(rows(store, T.pain, device_id="bed-1")) == 3, what="3 pain rows")
        wait_for(lambda: (device(store, "bed-1") or {}) and device(store, "bed-1").state == "online",
                 what="online")
        d = device(store, "bed-1")
        assert d.score == 4.0 and d.level == "moderate" and d.boot_id == bed.boot_id
        assert d.hr_bpm is not None and d.contributions["face"]["top_features"]["pspi"] == 0.5
        assert len(rows(store, T.vitals, device_id="bed-1")) == 3
        wait_for(lambda: rows(store, T.pain_minutes, device_id="bed-1"), what="a roll-up")
    finally:
        bed.stop()
    wait_for(lambda: device(store, "bed-1").state == "offline", what="offline")


def test_duplicates_are_stored_once_and_late_messages_at_their_true_time(ingest, store, mosquitto):
    bed = SimulatedBed(mosquitto.host, mosquitto.port, "bed-2").start()
    try:
        bed.hop(score=5.0)
        wait_for(lambda: device(store, "bed-2") and device(store, "bed-2").score == 5.0)
        # QoS 1 delivers at least once: the same (boot, seq) again is one row.
        seq = bed.published[-1][1]
        pain = next(s for sub, s, _ in bed.published if sub == "pain")
        body = {**bed.envelope("painmon.pain/1"), "seq": pain, "score": 9.0, "level": "severe",
                "confidence": 0.5, "contributions": {}, "flags": []}
        raw_publish(mosquitto, bed.topic("pain"), json.dumps(body).encode())
        # An estimate from an outage an hour ago, sent late from the outbox.
        hour_ago = time.time() - 3600
        late = {**bed.envelope("painmon.pain/1", hour_ago), "late": True, "score": 7.5,
                "level": "severe", "confidence": 0.6, "contributions": {}, "flags": []}
        raw_publish(mosquitto, bed.topic("pain"), json.dumps(late).encode())
        wait_for(lambda: len(rows(store, T.pain, device_id="bed-2")) == 2, what="2 rows")
        time.sleep(0.3)
        stored = sorted(rows(store, T.pain, device_id="bed-2"), key=lambda r: r.t_unix_s)
        assert len(stored) == 2 and seq >= pain
        assert stored[0].late and abs(stored[0].t_unix_s - hour_ago) < 0.01
        assert stored[0].received_unix_s - stored[0].t_unix_s > 3500
        assert stored[1].score == 5.0  # the duplicate did not overwrite it
        assert ingest.stats.duplicates >= 1
        # The late estimate is history: the bed still shows its newest one.
        assert device(store, "bed-2").score == 5.0
        minute = int(hour_ago // 60 * 60)
        wait_for(lambda: rows(store, T.pain_minutes, device_id="bed-2", minute_unix_s=minute),
                 what="the late minute rolled up")
    finally:
        bed.stop()


def test_malformed_and_forged_payloads_are_counted_never_stored(ingest, store, mosquitto):
    bed = SimulatedBed(mosquitto.host, mosquitto.port, "bed-3").start()
    try:
        bed.hop(score=1.0)
        wait_for(lambda: device(store, "bed-3") and device(store, "bed-3").score == 1.0)
        raw_publish(mosquitto, bed.topic("pain"), b"{not json")
        bad_score = {**bed.envelope("painmon.pain/1"), "score": 42, "level": "severe",
                     "confidence": 0.5, "contributions": {}, "flags": []}
        raw_publish(mosquitto, bed.topic("pain"), json.dumps(bad_score).encode())
        forged = {**bed.envelope("painmon.pain/1"), "device_id": "bed-99", "score": 9.0,
                  "level": "severe", "confidence": 0.9, "contributions": {}, "flags": []}
        raw_publish(mosquitto, bed.topic("pain"), json.dumps(forged).encode())
        raw_publish(mosquitto, "painmon/ghost-bed/pain", b"[]")
        bad_time = {**bad_score, "score": 1.0, "t": "yesterday"}
        raw_publish(mosquitto, bed.topic("pain"), json.dumps(bad_time).encode())
        huge_seq = {**bad_score, "score": 1.0, "seq": 2**70}
        raw_publish(mosquitto, bed.topic("pain"), json.dumps(huge_seq).encode())
        # Counted once stored: wait for both, not the rows alone.
        wait_for(lambda: len(rows(store, T.rejected)) == 6 and ingest.stats.rejected == 6,
                 what="6 rejected, stored and counted")
        reasons = sorted(r.reason for r in rows(store, T.rejected))
        assert any("not JSON" in r for r in reasons)
        assert any("score" in r and "42" in r for r in reasons)
        assert any("does not match the topic" in r for r in reasons)
        assert any("not an ISO 8601 date-time" in r for r in reasons)
        assert any("seq" in r and "beyond" in r for r in reasons)
        assert device(store, "bed-3").rejected == 5
        assert device(store, "ghost-bed") is None  # a forged topic adds no bed
        assert device(store, "bed-3").score == 1.0
        bed.hop(score=2.0)  # ingest goes on
        wait_for(lambda: device(store, "bed-3").score == 2.0, what="ingest after bad input")
    finally:
        bed.stop()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the broker's part, not the database's
def test_a_vanished_device_goes_offline_within_its_keepalive(ingest, store, mosquitto):
    keepalive_s = 2
    bed = SimulatedBed(mosquitto.host, mosquitto.port, "bed-4", keepalive_s=keepalive_s).start()
    bed.hop()
    wait_for(lambda: device(store, "bed-4") and device(store, "bed-4").state == "online")
    vanished = time.monotonic()
    bed.vanish()
    wait_for(lambda: device(store, "bed-4").state == "offline", timeout_s=10, what="offline")
    # The broker waits 1.5 keep-alives of silence, and looks every few seconds.
    elapsed = time.monotonic() - vanished
    print(f"offline after {elapsed:.1f} s")
    assert elapsed < 1.5 * keepalive_s + 4.0


def test_alarm_acknowledged_from_the_station_reaches_the_device(ingest, store, mosquitto):
    bed = SimulatedBed(mosquitto.host, mosquitto.port, "bed-5").start()
    try:
        alarm = bed.raise_pain_alarm()
        wait_for(lambda: device(store, "bed-5") and device(store, "bed-5").loudest == "medium",
                 what="the alarm")
        request_id = ingest.send_command("bed-5", "acknowledge",
                                         {"alarm_id": alarm.id, "by": "nurse-ann"}, "nurse-ann")
        sent = wait_for(lambda: (c := store.command(request_id)) and c.result_unix_s and c,
                        what="the result")
        assert sent.ok and sent.result == {"acknowledged": [alarm.id]}
        assert bed.book.get("pain_high", "pain").acknowledged_by == "nurse-ann"
        wait_for(lambda: device(store, "bed-5").loudest is None, what="silenced")
        events = [r.event for r in rows(store, T.alarm_events, device_id="bed-5")]
        assert events[:1] == ["raised"] and "acknowledged" in events
        assert rows(store, T.audit, username="nurse-ann")[0].detail["alarm_id"] == alarm.id
    finally:
        bed.stop()


def test_a_message_the_database_cannot_take_does_not_block_the_others(ingest, store, mosquitto):
    """PostgreSQL refuses NUL in text, SQLite stores it: either way the bed's next messages
    are stored, and on PostgreSQL the message is refused and kept, not retried for ever."""
    bed = SimulatedBed(mosquitto.host, mosquitto.port, "bed-6").start()
    try:
        alarm = {**bed.envelope("painmon.alarm/1"), "event": "raised", "alarm_id": "x1",
                 "kind": "finger_off", "source": "ppg", "category": "technical",
                 "priority": "low", "message": "nul \u0000 inside", "state": "raised",
                 "raised_t": "2026-01-01T00:00:00Z"}
        raw_publish(mosquitto, bed.topic("alarm"), json.dumps(alarm).encode())
        bed.hop(score=3.0)
        wait_for(lambda: device(store, "bed-6") and device(store, "bed-6").score == 3.0,
                 what="the next estimate")
        if store.dialect == "postgresql":
            wait_for(lambda: any("not storable" in r.reason for r in rows(store, T.rejected)),
                     what="the NUL refused")
        else:
            assert wait_for(lambda: rows(store, T.alarm_events, device_id="bed-6"))
    finally:
        bed.stop()
