"""The on-disk outbox and its sender, against a real mosquitto."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3

import pytest

from tests.device.mqtt_helpers import device_config, wait_until

from device.comms.delivery import MqttOutput
from device.comms.link import MqttLink
from device.comms.outbox import Outbox
from device.comms.sender import OutboxSender
from device.processing.envelope import Envelope


def pain(seq: int, boot_id: str = "boot-x") -> dict:
    return {"schema": "painmon.pain/1", "device_id": "bed-ob", "boot_id": boot_id, "seq": seq,
            "t": "2026-01-01T00:00:00.000Z", "score": seq % 11, "level": "mild",
            "confidence": 0.5, "contributions": {}, "flags": []}


def test_entries_survive_reopen_in_order_with_wal_and_full_sync(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path, max_entries=100)
    ids = [outbox.put("painmon/bed-ob/pain", pain(i), live=True) for i in range(1, 6)]
    assert ids == sorted(ids)
    outbox.close()
    reopened = Outbox(path, max_entries=100)
    entries = reopened.pending()
    assert [json.loads(e.payload)["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert reopened.resumed == 5
    # What an earlier run left is late, whatever it was when stored.
    assert not any(e.live for e in entries)
    assert json.loads(entries[0].body(late=True))["late"] is True
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened.remove([entries[0].id, entries[1].id])
    assert [json.loads(e.payload)["seq"] for e in reopened.pending()] == [3, 4, 5]
    assert [json.loads(e.payload)["seq"] for e in reopened.pending(entries[2].id)] == [4, 5]
    # synchronous=FULL is per connection: check the one the outbox writes with.
    assert reopened._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_bound_evicts_oldest_first_and_counts_persistently(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="device.comms.outbox")
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path, max_entries=10)
    for i in range(1, 26):
        outbox.put("t", pain(i))
    assert [json.loads(e.payload)["seq"] for e in outbox.pending()] == list(range(16, 26))
    assert outbox.stats() == {"pending": 10, "evicted": 15, "max_entries": 10}
    assert "evicted" in caplog.text
    outbox.close()
    assert Outbox(path, max_entries=10).evicted == 15


def test_rejects_what_is_not_json(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite3")
    with pytest.raises(ValueError):
        outbox.put("t", {"score": float("nan")})
    assert outbox.count() == 0


def test_an_entry_leaves_only_when_its_puback_arrives(mosquitto, mqtt_probe, tmp_path):
    config = device_config(mosquitto, tmp_path, "bed-ob1")
    probe = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/bed-ob1/pain")
    outbox = Outbox(tmp_path / "o.sqlite3")
    with MqttLink(config.mqtt, "bed-ob1") as link:
        assert link.wait_connected(5)
        sender = OutboxSender(outbox, link).start()
        # A stopped broker reads nothing and acknowledges nothing.
        mosquitto.process.send_signal(signal.SIGSTOP)
        try:
            for seq in (1, 2, 3):
                sender.send(link.topic("pain"), pain(seq))
            wait_until(lambda: sender.sent == 3, 5, "handed to paho")
            assert not sender.wait_idle(1.0)
            assert outbox.count() == 3 and sender.confirmed == 0
        finally:
            mosquitto.process.send_signal(signal.SIGCONT)
        assert sender.wait_idle(5)
        assert outbox.count() == 0 and sender.confirmed == 3
        bodies = [m.json() for m in probe.messages]
        wait_until(lambda: len(probe.messages) >= 3, 5, "three messages")
        bodies = [m.json() for m in probe.messages]
        assert [b["seq"] for b in bodies] == [1, 2, 3]
        assert not any(b.get("late") for b in bodies)  # sent at once, acknowledged late
        sender.stop()


def test_what_waited_goes_out_in_order_with_late_and_its_time(mosquitto, mqtt_probe, tmp_path):
    config = device_config(mosquitto, tmp_path, "bed-ob2")
    probe = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/bed-ob2/#")
    link = MqttLink(config.mqtt, "bed-ob2")
    output = MqttOutput(config, link, Envelope(config.device_id)).start()
    try:
        for seq in range(1, 6):  # the link is not up yet: these wait on disk
            output("pain", pain(seq, "boot-w"))
        assert output.outbox.count() == 5
        output("vitals", {"schema": "painmon.vitals/1", "seq": 99})  # live: not kept
        assert output.dropped_offline == 1
        link.start()
        assert link.wait_connected(5)
        assert output.sender.wait_idle(5)
        output("pain", pain(6, "boot-w"))
        assert output.sender.wait_idle(5)
        wait_until(lambda: sum(m.topic.endswith("/pain") for m in probe.messages) >= 6, 5, "6")
        bodies = [m.json() for m in probe.messages if m.topic.endswith("/pain")]
        assert [b["seq"] for b in bodies] == [1, 2, 3, 4, 5, 6]
        assert [b.get("late", False) for b in bodies] == [True] * 5 + [False]
        assert {b["t"] for b in bodies} == {"2026-01-01T00:00:00.000Z"}
        pain_msg = next(m for m in probe.messages if m.topic.endswith("/pain"))
        assert ("schema", "painmon.pain/1") in pain_msg.properties.UserProperty
        status = next(m.json() for m in probe.messages if m.topic.endswith("/status"))
        assert status["outbox"]["max_entries"] == config.mqtt.outbox_max_entries
        assert not any(m.topic.endswith("/vitals") for m in probe.messages)
    finally:
        output.stop()
        link.stop()
