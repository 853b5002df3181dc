"""A full state directory is a fault like a pulled sensor: alarmed, reported, nothing lost.

The state directory is a real 512 KiB tmpfs, filled to the last byte by a filler file. While
it is full: the ``storage_failed`` technical alarm is active with the real cause, the health
message's ``storage`` part says so (free space, pending, held in memory), pain estimates are
kept in memory and still delivered, and commands are answered (one that needs the disk with
its reason). When the filler goes, storage resumes by itself and the alarm clears.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import paho.mqtt.publish as mqtt_publish
import pytest

from sensors.clock import ScaledClock
from tests.device.mqtt_helpers import device_config, serve, wait_until

from device.app.root import build_monitor
from device.comms.link import MqttLink
from device.comms.outbox import WAL_LIMIT_BYTES, Outbox
from device.processing.envelope import utc_iso

DEVICE = "bed-d1"
ESTIMATES = 120


@pytest.fixture
def small_state_dir(tmp_path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(state)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the state directory (needs root): "
                    f"{done.stderr.strip()}")
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(directory: Path) -> Path:
    """Write a filler file until the filesystem refuses another byte."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    return filler


def pain(seq: int) -> dict:
    return {"schema": "painmon.pain/1", "device_id": DEVICE, "boot_id": "boot-d1", "seq": seq,
            "t": "2026-01-01T00:00:00.000Z", "score": 2.0, "level": "mild", "confidence": 0.5,
            "contributions": {}, "flags": []}


def command(broker, name: str, payload: dict) -> None:
    """As a nurse's station sends it: on the nurse role's topic, stamped with its time."""
    mqtt_publish.single(f"painmon/{DEVICE}/cmd/nurse/{name}", json.dumps({"t": utc_iso(), **payload}),
                        qos=1, hostname=broker.host, port=broker.port)


def test_full_state_directory_alarms_keeps_and_recovers(small_state_dir, mosquitto, mqtt_probe,
                                                        caplog):
    config = device_config(mosquitto, small_state_dir, DEVICE)
    probe = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{DEVICE}/#")
    link = MqttLink(config.mqtt, DEVICE, boot_id="boot-d1")  # started once the disk is full
    monitor = build_monitor(config, ScaledClock(1.0), [])
    output = serve(monitor, link)
    monitor.pipeline.health.sections["storage"] = output.storage_health

    def results(request_id: str) -> list[dict]:
        return [m.json() for m in probe.messages if m.topic.endswith("/cmd/result")
                and m.json().get("request_id") == request_id]

    def delivered() -> set[int]:
        return {m.json()["seq"] for m in probe.messages if m.topic.endswith("/pain")}

    # A patient admitted while there is room: self-reports belong to a stay.
    assert monitor.commands.handle("admit", b'{"reference": "full-01"}')["ok"]
    try:
        for seq in range(ESTIMATES // 2):  # stored on disk, waiting for the link
            output("pain", pain(seq))
        filler = fill(small_state_dir)
        for seq in range(ESTIMATES // 2, ESTIMATES + 1):  # the disk refuses these
            output("pain", pain(seq))
        # The alarm, with the real cause.
        alarm = monitor.alarms.get("storage_failed", "outbox")
        assert alarm is not None and alarm.category == "technical"
        assert "full" in alarm.message, alarm.message
        health = monitor.pipeline.health.message()
        storage = health["storage"]
        assert storage["state"] == "failing" and "full" in storage["reason"]
        assert storage["held_in_memory"] > 0 and storage["outbox_pending"] >= storage["held_in_memory"]
        assert storage["free_bytes"] < 8192 and storage["lost"] == 0
        assert "storage_failed/outbox" in health["alarms"]
        assert output.status_fields()["outbox"]["held_in_memory"] > 0
        # What is on disk goes first, then what is held in memory (though the disk cannot even
        # delete what the broker acknowledged).
        link.start()
        assert link.wait_connected(5)
        wait_until(lambda: set(range(ESTIMATES + 1)) <= delivered(), 15,
                   "every estimate delivered while the disk is full")
        unremoved = len(output.sender._unremoved)  # acknowledged, the delete refused
        # Commands are still answered; one that needs the disk says why it failed.
        command(mosquitto, "ping", {"request_id": "p1"})
        command(mosquitto, "self_report", {"request_id": "r1", "nrs": 4})
        wait_until(lambda: results("p1") and results("r1"), 15, "both commands answered")
        assert results("p1")[0]["ok"] is True
        refused = results("r1")[0]
        assert refused["ok"] is False and "full" in refused["reason"], refused
        # Space returns: storage resumes by itself, the alarm clears, nothing is pending.
        filler.unlink()
        wait_until(lambda: monitor.alarms.get("storage_failed", "outbox") is None, 15,
                   "the storage alarm cleared")
        assert output.sender.wait_idle(15)
        assert monitor.pipeline.health.message()["storage"]["state"] == "ok"
        command(mosquitto, "self_report", {"request_id": "r2", "nrs": 5})
        wait_until(lambda: results("r2"), 15, "a self-report once space returned")
        assert results("r2")[0]["ok"] is True, results("r2")
    finally:
        output.stop()
        link.stop()
        monitor.pipeline.stop()
    assert "cannot store" in caplog.text and "database or disk is full" in caplog.text
    assert "no transaction is active" not in caplog.text
    print(f"disk full: {ESTIMATES} estimates, all delivered ({unremoved} acknowledged but "
          f"not deletable while full); status then {storage}")


def test_outbox_wal_stays_small(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    body = {"schema": "painmon.pain/1", "pad": "x" * 400}
    for _ in range(20):
        ids = [outbox.put("painmon/b/pain", {**body, "seq": i}) for i in range(200)]
        outbox.remove(ids)
    wal = tmp_path / "outbox.sqlite3-wal"
    size = wal.stat().st_size if wal.exists() else 0
    outbox.close()
    # 4000 entries of ~450 bytes went through: SQLite's defaults let the WAL reach megabytes.
    assert size <= WAL_LIMIT_BYTES + 64 * 4096, size
    print(f"outbox WAL after 4000 entries through it: {size} bytes")
    assert os.path.getsize(tmp_path / "outbox.sqlite3") < 1024 * 1024
