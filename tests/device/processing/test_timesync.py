"""Wall time with a synced flag: the kernel's NTP state, systemd-timesyncd's flag file."""

from __future__ import annotations

import sys

import pytest

from sensors.clock import SteppedClock

from device.app.root import build_monitor
from device.config import default_config
from device.processing.envelope import Envelope
from device.processing.timesync import TIME_ERROR, WallClock, clock_synchronised, kernel_time_state


@pytest.mark.skipif(sys.platform != "linux", reason="adjtimex is Linux's")
def test_kernel_state_is_read_without_privileges():
    state = kernel_time_state()
    assert state is not None and 0 <= state <= TIME_ERROR


def test_flag_file_or_kernel_decides(tmp_path):
    kernel_synced = kernel_time_state() not in (None, TIME_ERROR)
    synced, why = clock_synchronised(tmp_path / "absent")
    assert synced == kernel_synced and why
    flag = tmp_path / "synchronized"
    flag.touch()
    assert clock_synchronised(flag)[0] is True


def test_wall_clock_rechecks_and_stamps(tmp_path):
    flag = tmp_path / "synchronized"
    wall = WallClock(recheck_s=0.0, flag=flag)
    before = wall.synced()
    flag.touch()
    assert wall.synced() is True
    message = Envelope("d", synced=wall.synced)("painmon.test/1")
    assert message["t"].endswith("Z") and message["t_synced"] is True
    cached = WallClock(recheck_s=3600, flag=flag)
    assert cached.synced() is True
    flag.unlink()
    assert cached.synced() is True  # not re-read within recheck_s
    assert isinstance(before, bool)


def test_every_message_says_whether_its_wall_time_is_trustworthy(tmp_path):
    config = default_config()
    config = config.model_copy(update={"face": config.face.model_copy(update={"enabled": False}),
                                       "state_dir": tmp_path})
    seen = []
    flag = tmp_path / "synchronized"
    monitor = build_monitor(config, SteppedClock(), [lambda topic, m: seen.append((topic, m))],
                            wall=WallClock(recheck_s=0.0, flag=flag))
    pipeline = monitor.pipeline
    try:
        pipeline.step(1_000_000_000)
        flag.touch()
        pipeline.step(2_000_000_000)
    finally:
        pipeline.stop()
    assert {topic for topic, _ in seen} >= {"vitals"}
    assert all(isinstance(m["t_synced"], bool) for _, m in seen)
    last_vitals = [m for topic, m in seen if topic == "vitals"][-1]
    assert last_vitals["t_synced"] is True
