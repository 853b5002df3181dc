"""State files and recordings are the patient's: owner-only whatever the umask, and a failed
connection says why in the log."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from sensors.clock import SteppedClock
from tests.device.mqtt_helpers import wait_until

from device.care.calibration import atomic_write_json
from device.care.selfreport import SelfReportStore
from device.comms.link import MqttLink
from device.comms.outbox import Outbox
from device.config import MqttConfig
from device.recording.writer import Recorder


@pytest.fixture
def open_umask():
    old = os.umask(0o022)  # a shell's: files 0644, directories 0755 unless said otherwise
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_state_files_are_owner_only_whatever_the_umask(tmp_path, open_umask):
    state = tmp_path / "state"
    outbox = Outbox(state / "outbox-bed.sqlite3")
    outbox.put("painmon/bed/pain", {"seq": 1})
    outbox.close()
    store = SelfReportStore(state / "reports")
    store.add("2026-01-01T00:00:00Z", "bed", 3, "patient", 2.0, {})
    store.close()
    atomic_write_json(state / "cal" / "calibration.json", {"a": 1})
    for path in (state, state / "reports", state / "cal"):
        assert mode(path) == 0o700, path
    for path in [*state.glob("outbox-bed.sqlite3*"), *(state / "reports").glob("*"),
                 state / "cal" / "calibration.json"]:
        assert mode(path) == 0o600, path


def test_recordings_are_owner_only_whatever_the_umask(tmp_path, open_umask):
    pytest.importorskip("pyedflib")
    recorder = Recorder(tmp_path / "rec", SteppedClock(), device_id="bed", boot_id="b")
    recorder.start()
    recorder.on_message("alarm", {"x": 1})
    recorder.stop()
    assert mode(tmp_path / "rec") == 0o700
    files = list((tmp_path / "rec").iterdir())
    assert files and all(mode(f) == 0o600 for f in files), [(f, oct(mode(f))) for f in files]


def test_a_connection_failure_is_logged_with_its_reason(caplog):
    caplog.set_level(logging.INFO)
    config = MqttConfig(host="127.0.0.1", port=1, reconnect_min_s=0.1, reconnect_max_s=0.2)
    with MqttLink(config, "bed-log") as link:
        wait_until(lambda: link.refused >= 2, 10, "two failed attempts")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "Connection refused" in errors[0].getMessage()
    assert len(errors) == 1  # the same reason again is not logged again at error
