"""State files carry their schema version: a file from an older release is brought forward at
open (in one transaction), a newer release's additive changes are used as they are, and a
newer file this release cannot read stops the start with a message naming the file and fix."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest

from device.care.calibration import CALIBRATION_FILE, CalibrationStore
from device.care.selfreport import SelfReportStore
from device.care.stay import StayStore
from device.comms.outbox import Outbox
from device.processing.answered import AnsweredRequests
from device.processing.state_files import StateFileError, Step, migrate, schema_version


def version_of(path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        return schema_version(db)


def set_version(path, version: int, oldest_reader: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {version | oldest_reader << 16}")


STORES = {
    "outbox": (lambda d: Outbox(d / "outbox-bed-1.sqlite3"), "outbox-bed-1.sqlite3", 1),
    "stays": (lambda d: StayStore(d), "stays.sqlite", 1),
    "answered": (lambda d: AnsweredRequests(d / "answered.sqlite3"), "answered.sqlite3", 2),
}


@pytest.mark.parametrize("name", sorted(STORES))
def test_each_store_writes_its_version_and_opens_a_newer_additive_one(tmp_path, name, caplog):
    make, file, version = STORES[name]
    make(tmp_path).close()
    assert version_of(tmp_path / file) == (version, 1)
    set_version(tmp_path / file, version + 3, 1)  # a later release's additive steps
    with caplog.at_level(logging.WARNING):
        make(tmp_path).close()
    assert "from a newer painmon" in caplog.text
    assert version_of(tmp_path / file) == (version + 3, 1)  # left as that release wrote it
    set_version(tmp_path / file, version + 3, version + 2)  # ... and one it cannot read
    with pytest.raises(StateFileError) as refused:
        make(tmp_path)
    assert str(tmp_path / file) in str(refused.value) and "move the file away" in str(refused.value)


def test_self_reports_written_before_versions_are_kept_and_versioned(tmp_path):
    path = tmp_path / "selfreports.sqlite"
    with sqlite3.connect(path) as db:  # as a release before schema versions left it
        db.execute("CREATE TABLE reports (id INTEGER PRIMARY KEY AUTOINCREMENT, t TEXT NOT NULL, "
                   "device_id TEXT NOT NULL, nrs INTEGER NOT NULL, source TEXT NOT NULL, "
                   "fused_score REAL, features TEXT NOT NULL)")
        db.execute("INSERT INTO reports (t, device_id, nrs, source, fused_score, features) "
                   "VALUES ('2026-01-01T00:00:00Z', 'bed-1', 6, 'nurse', 5.5, '{}')")
    store = SelfReportStore(tmp_path)
    store.add("2026-01-01T00:01:00Z", "bed-1", 3, "patient", 2.0, {})
    assert [r.nrs for r in store.reports()] == [6, 3]
    assert version_of(path) == (1, 1)


def test_answers_from_before_stays_are_brought_forward(tmp_path):
    path = tmp_path / "answered.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE answered (request_id TEXT PRIMARY KEY, command TEXT NOT NULL,"
                   " result TEXT NOT NULL, at REAL NOT NULL)")
        db.execute("INSERT INTO answered VALUES ('old-1', 'ping', '{\"ok\": true}', 1.0)")
    store = AnsweredRequests(path)
    assert store.get("old-1") == ("ping", {"ok": True}, None)
    store.stay = "1@2026-01-01T00:00:00Z"
    store.put("new-1", "ping", {"ok": True})
    assert store.get("new-1")[2] == "1@2026-01-01T00:00:00Z"
    assert version_of(path) == (2, 1)


def test_a_step_that_fails_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "s.sqlite3"
    db = sqlite3.connect(path)
    assert migrate(db, path, [Step(("CREATE TABLE a (x INTEGER)",))]) == 0
    steps = [Step(("CREATE TABLE a (x INTEGER)",)),
             Step(("ALTER TABLE a ADD COLUMN y INTEGER", "INSERT INTO nowhere VALUES (1)"))]
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        migrate(db, path, steps)
    assert schema_version(db) == (1, 1)
    assert [c[1] for c in db.execute("PRAGMA table_info(a)")] == ["x"]  # the ALTER undone
    # A step a release that knows only the versions before it cannot use raises the floor.
    steps[1] = Step(("ALTER TABLE a ADD COLUMN y INTEGER NOT NULL DEFAULT 0",), additive=False)
    assert migrate(db, path, steps) == 1 and schema_version(db) == (2, 2)
    with pytest.raises(StateFileError, match="version 2, written by a newer painmon"):
        migrate(db, path, steps[:1])
    db.close()


def test_a_newer_calibration_is_kept_for_its_release_not_set_aside(tmp_path):
    path = tmp_path / CALIBRATION_FILE
    path.write_text(json.dumps({"schema": "painmon.calibration/2", "face": {}}))
    with pytest.raises(StateFileError, match="painmon.calibration/2, written by a newer painmon"):
        CalibrationStore(tmp_path)
    assert json.loads(path.read_text())["schema"] == "painmon.calibration/2"
    assert list(tmp_path.glob("*.damaged-*")) == []
