"""Damaged state files: each store checks its file at start, moves a damaged one aside (never
deletes it), reports it as a technical alarm and starts fresh; an unreadable one stops the
start with a message naming the file and the fix.

The stores: the outbox (SQLite), the self-reports (SQLite) and the calibration (JSON).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from sensors.clock import SteppedClock

from device.care.calibration import CALIBRATION_FILE, CALIBRATION_SCHEMA, CalibrationStore
from device.care.selfreport import REPORTS_FILE, SelfReportStore
from device.comms.outbox import Outbox
from device.processing.alarms import AlarmBook
from device.processing.state_files import DAMAGED_KIND, StateFileError, alarm_reporter

NOBODY = 65534


def outbox_file(state: Path) -> Path:
    return state / "outbox-bed-1.sqlite3"


def make_outbox(state: Path, book: AlarmBook | None = None) -> Outbox:
    return Outbox(outbox_file(state), on_damaged=alarm_reporter(book) if book else None)


def fill_outbox(state: Path) -> None:
    outbox = make_outbox(state)
    for seq in range(400):  # several pages, so half of the file is a real truncation
        outbox.put("painmon/bed-1/pain", {"seq": seq, "pad": "x" * 200})
    outbox.close()


def make_reports(state: Path, book: AlarmBook | None = None) -> SelfReportStore:
    return SelfReportStore(state, alarm_reporter(book) if book else None)


def fill_reports(state: Path) -> None:
    store = make_reports(state)
    for i in range(200):
        store.add(f"2026-01-01T00:00:{i % 60:02d}Z", "bed-1", i % 11, "patient", 1.0,
                  {"pain": {"score": 1.0}, "pad": "y" * 300})
    store.close()


def make_calibration(state: Path, book: AlarmBook | None = None) -> CalibrationStore:
    return CalibrationStore(state, alarm_reporter(book) if book else None)


def fill_calibration(state: Path) -> None:
    make_calibration(state).save(physio={"centers": [1.0, 2.0], "pad": "z" * 500})


STORES = {  # name -> (file, open the store, write some history into it)
    "outbox": (outbox_file, make_outbox, fill_outbox),
    "selfreports": (lambda s: s / REPORTS_FILE, make_reports, fill_reports),
    "calibration": (lambda s: s / CALIBRATION_FILE, make_calibration, fill_calibration),
}


def damage(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(os.urandom(5000))
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif how == "zero_length":
        path.write_bytes(b"")


def usable(name: str, store) -> None:
    """The fresh store works: a write and a read back."""
    if name == "outbox":
        store.put("painmon/bed-1/pain", {"seq": 1})
        assert store.count() == 1
    elif name == "selfreports":
        store.add("2026-01-01T00:00:00Z", "bed-1", 3, "nurse", None, {})
        assert store.count() == 1
    else:
        assert store.load() == {}
        store.save(mapping={"a": 1})
        assert store.load()["mapping"]["a"] == 1


@pytest.mark.parametrize("how", ["garbage", "truncated", "zero_length"])
@pytest.mark.parametrize("name", sorted(STORES))
def test_damaged_file_is_moved_aside_alarmed_and_replaced(tmp_path, caplog, name, how):
    file_of, open_store, fill = STORES[name]
    path = file_of(tmp_path)
    fill(tmp_path)
    for suffix in ("-wal", "-shm"):  # a checkpointed store leaves no journal to carry along
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    damage(path, how)
    before = path.read_bytes()
    book = AlarmBook(SteppedClock())
    store = open_store(tmp_path, book)
    try:
        usable(name, store)
    finally:
        if hasattr(store, "close"):
            store.close()
    aside = sorted(tmp_path.glob(f"{path.name}.damaged-*"))
    assert len(aside) == 1, sorted(p.name for p in tmp_path.iterdir())
    assert aside[0].read_bytes() == before  # kept, byte for byte
    alarm = book.get(DAMAGED_KIND, path.name)
    assert alarm is not None and alarm.category == "technical"
    assert str(path) in alarm.message and aside[0].name in alarm.message
    assert str(path) in caplog.text and str(aside[0]) in caplog.text


@pytest.mark.parametrize("name", sorted(STORES))
def test_sound_file_is_kept(tmp_path, name):
    file_of, open_store, fill = STORES[name]
    fill(tmp_path)
    book = AlarmBook(SteppedClock())
    store = open_store(tmp_path, book)
    if name == "outbox":
        assert store.count() == 400
    elif name == "selfreports":
        assert store.count() == 200
    else:
        assert store.load()["schema"] == CALIBRATION_SCHEMA
    if hasattr(store, "close"):
        store.close()
    assert not list(tmp_path.glob("*.damaged-*"))
    assert book.active() == []


def test_calibration_of_another_kind_is_set_aside_not_overwritten(tmp_path):
    path = tmp_path / CALIBRATION_FILE
    path.write_text(json.dumps({"schema": "someone.else/9", "keep": True}))
    store = make_calibration(tmp_path, AlarmBook(SteppedClock()))
    store.save(mapping={"a": 1})
    aside = list(tmp_path.glob(f"{CALIBRATION_FILE}.damaged-*"))
    assert len(aside) == 1 and json.loads(aside[0].read_text())["keep"] is True


@contextmanager
def as_nobody():
    """Run the block with the effective uid of nobody (root reads any file otherwise)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.mark.parametrize("name", sorted(STORES))
def test_unreadable_file_stops_the_start_naming_file_and_fix(name):
    # A directory nobody may write into, outside pytest's private (0700) temp root.
    state = Path(tempfile.mkdtemp(prefix="painmon-state-"))
    try:
        os.chmod(state, 0o755)
        if os.geteuid() == 0:
            os.chown(state, NOBODY, NOBODY)
        file_of, open_store, fill = STORES[name]
        fill(state)
        path = file_of(state)
        for extra in state.iterdir():  # the store's files as another user left them
            if os.geteuid() == 0:
                os.chown(extra, 0, 0)
            os.chmod(extra, 0o600)
        with as_nobody(), pytest.raises(StateFileError) as raised:
            open_store(state, AlarmBook(SteppedClock()))
        message = str(raised.value)
        assert str(path) in message and "Permission denied" in message
        assert "chown" in message and "\n" not in message
        assert path.exists() and not list(state.glob("*.damaged-*"))  # nothing moved or lost
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_painmon_run_on_an_unreadable_outbox_says_which_file_in_one_line(capsys, mosquitto):
    import device.app.device  # noqa: F401 - imported as root: nobody cannot read the venv
    from device.cli import main

    state = Path(tempfile.mkdtemp(prefix="painmon-state-"))
    try:
        os.chmod(state, 0o755)
        config = state / "painmon.toml"
        config.write_text(f'device_id = "bed-1"\nhardware = "emulated"\nstate_dir = "{state}"\n'
                          f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
                          "ha_discovery = false\n[face]\nenabled = false\n")
        fill_outbox(state)
        for extra in state.iterdir():
            os.chmod(extra, 0o644 if extra == config else 0o600)
        if os.geteuid() == 0:
            os.chown(state, NOBODY, NOBODY)
        capsys.readouterr()
        with as_nobody():
            code = main(["run", "--config", str(config), "--seconds", "1"])
        err = capsys.readouterr().err.strip().splitlines()
    finally:
        shutil.rmtree(state, ignore_errors=True)
    assert code == 1
    last = err[-1]
    assert last.startswith("painmon run: state file ") and str(outbox_file(state)) in last, err
    assert not any("Traceback" in line for line in err), err
