"""The journal: under systemd (stderr is the stream JOURNAL_STREAM names) every log line carries
an sd-daemon priority and no timestamp of its own; the device logs INFO by default; a real
``painmon run`` says connecting, connected and ready that way."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

from device.app import journal

PRIORITY_LINE = re.compile(r"^<([0-7])>[\w.]+: ")


def _stream_id(fd: int) -> str:
    st = os.fstat(fd)
    return f"{st.st_dev}:{st.st_ino}"


def test_priorities_follow_syslog():
    assert [journal.syslog_priority(level) for level in (
        logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG, 5)] == [2, 3, 4, 6, 7, 7]


def test_every_line_of_a_traceback_keeps_its_priority():
    try:
        raise RuntimeError("bus gone")
    except RuntimeError:
        record = logging.LogRecord("device.acquisition", logging.ERROR, __file__, 1,
                                   "reader died", None, sys.exc_info())
    text = journal.JournalFormatter().format(record)
    lines = text.splitlines()
    assert lines[0] == "<3>device.acquisition: reader died"
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
    assert "RuntimeError: bus gone" in lines[-1]


def test_journal_stream_must_be_this_stream(tmp_path):
    with open(tmp_path / "a", "w") as a, open(tmp_path / "b", "w") as b:
        env = {"JOURNAL_STREAM": _stream_id(a.fileno())}
        assert journal.stream_is_journal(a, env)
        # A child whose stderr was redirected inherits the variable: not the journal.
        assert not journal.stream_is_journal(b, env)
        assert not journal.stream_is_journal(a, {})
        assert not journal.stream_is_journal(a, {"JOURNAL_STREAM": "garbage"})
        assert not journal.stream_is_journal(io.StringIO(), env)


def test_levels_info_for_the_device_warning_for_commands():
    assert journal.log_level(0, service=True) == logging.INFO
    assert journal.log_level(1, service=True) == logging.DEBUG
    assert journal.log_level(0, service=False) == logging.WARNING
    assert journal.log_level(1, service=False) == logging.INFO


def test_terminal_lines_keep_their_timestamp(tmp_path):
    code = ("import logging; from device.app import journal; journal.configure(0, service=True); "
            "logging.getLogger('device.x').info('hello')")
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True,
                         timeout=60, env={k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"})
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO device.x: hello$", out.stderr.strip()), out.stderr


def test_painmon_run_logs_info_with_priorities_to_the_journal(mosquitto, tmp_path):
    config = tmp_path / "painmon.toml"
    config.write_text(f'device_id = "journal-test"\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
                      "[face]\nenabled = false\n")
    # The journal's end of the stream: a file, whose device and inode go in JOURNAL_STREAM as
    # systemd does for the socket it connects.
    log_path = tmp_path / "journal.log"
    with open(log_path, "w") as log_file:
        env = {**os.environ, "PAINMON_HARDWARE": "emulated", "JOURNAL_STREAM": _stream_id(log_file.fileno())}
        proc = subprocess.Popen([sys.executable, "-m", "device.cli", "run", "--config", str(config)],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
        try:
            deadline = time.monotonic() + 60
            while "MQTT: connected" not in log_path.read_text():
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
            time.sleep(2.0)  # a few hops
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = log_path.read_text().splitlines()
    assert lines, "nothing logged"
    # LiteRT's C++ runtime writes "INFO: Created TensorFlow Lite XNNPACK delegate" to fd 2
    # itself; journald gives such lines the stream's level (info). Everything of ours is prefixed.
    unprefixed = [line for line in lines if not PRIORITY_LINE.match(line)
                  and not line.startswith("INFO: Created TensorFlow Lite")]
    assert not unprefixed, unprefixed
    assert not any(re.search(r"\d\d:\d\d:\d\d", line) for line in lines), lines  # journald stamps
    info = [line for line in lines if line.startswith("<6>")]
    assert any("MQTT: connecting" in line for line in info), lines
    assert any("MQTT: connected" in line for line in info), lines


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
