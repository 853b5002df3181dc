"""Upgrades that roll back: ``python -m device.app.upgrade`` switches ``current`` to a release
installed beside the running one, restarts the service, waits for a new boot online and its
first estimate, and goes back by itself when they do not come. A real painmon process, a real
mosquitto; the restart is tests/device/service_stub.py where systemd would be."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, MqttProbe

STUB = REPO / "tests" / "device" / "service_stub.py"


def _release(prefix: Path, version: str, body: str) -> Path:
    """``releases/<version>/venv/bin/painmon``: a shell script standing in for the venv's."""
    painmon = prefix / "releases" / version / "venv" / "bin" / "painmon"
    painmon.parent.mkdir(parents=True)
    painmon.write_text("#!/bin/sh\n" + body)
    painmon.chmod(0o755)
    return painmon.parents[2]


def _good(prefix: Path, version: str) -> Path:
    # This checkout's painmon, run as the installed one would be.
    return _release(prefix, version, f'PYTHONPATH="{REPO}" exec "{sys.executable}" -m device.cli "$@"\n')


def _broken(prefix: Path, version: str) -> Path:
    # A release that cannot start: its application does not import.
    return _release(prefix, version, f'exec "{sys.executable}" -c "import device.no_such_module" "$@"\n')


@pytest.fixture
def device(mosquitto, tmp_path):
    prefix = tmp_path / "opt"
    config = tmp_path / "painmon.toml"
    config.write_text(f'device_id = "upgrade-test"\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
                      "[face]\nenabled = false\n")
    restart = f"{sys.executable} {STUB} --prefix {prefix} --config {config} --settle 3"
    env = {**os.environ, "PAINMON_HARDWARE": "emulated", "PYTHONPATH": str(REPO)}
    yield prefix, config, restart, env
    pidfile = prefix / "service.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


def _upgrade(prefix, config, restart, env, version, timeout_s=60):
    return subprocess.run(check=False, args=[sys.executable, "-m", "device.app.upgrade", version,
                                             "--prefix", str(prefix),
                           "--config", str(config), "--restart-command", restart,
                           "--timeout", str(timeout_s)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=6 * timeout_s)


def _current(prefix: Path) -> str:
    return os.readlink(prefix / "current")


def _retained_status(mosquitto) -> dict:
    with MqttProbe(mosquitto.host, mosquitto.port, "painmon/upgrade-test/status") as probe:
        return probe.wait_for(lambda m: m.retain, timeout=5).json()


def test_an_upgrade_that_comes_up_stays(device, mosquitto):
    prefix, config, restart, env = device
    _good(prefix, "1.0")
    first = _upgrade(prefix, config, restart, env, "1.0")  # the first install: nothing before it
    assert first.returncode == 0, first.stdout + first.stderr
    _good(prefix, "1.1")
    result = _upgrade(prefix, config, restart, env, "1.1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _current(prefix) == "releases/1.1"
    assert "1.0 -> 1.1" in result.stdout and "first estimate after" in result.stdout


def test_a_release_that_cannot_start_is_rolled_back(device, mosquitto):
    prefix, config, restart, env = device
    _good(prefix, "1.0")
    assert _upgrade(prefix, config, restart, env, "1.0").returncode == 0
    boot_before = _retained_status(mosquitto)["boot_id"]
    _broken(prefix, "2.0")
    result = _upgrade(prefix, config, restart, env, "2.0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert _current(prefix) == "releases/1.0"  # back on the release that worked
    assert "rolling back to 1.0" in result.stdout and "1.0 online again" in result.stdout, result.stdout
    status = _retained_status(mosquitto)
    assert status["state"] == "online" and status["boot_id"] != boot_before  # restarted, running


def test_a_release_that_never_sends_an_estimate_is_rolled_back(device, mosquitto):
    prefix, config, restart, env = device
    _good(prefix, "1.0")
    assert _upgrade(prefix, config, restart, env, "1.0").returncode == 0
    _release(prefix, "2.0", "exec sleep 600\n")  # starts, never speaks
    result = _upgrade(prefix, config, restart, env, "2.0", timeout_s=8)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no new boot said online within 8 s" in result.stdout, result.stdout
    assert _current(prefix) == "releases/1.0"


def test_an_upgrade_to_a_missing_release_changes_nothing(device):
    prefix, config, restart, env = device
    _good(prefix, "1.0")
    (prefix / "current").symlink_to("releases/1.0")
    result = _upgrade(prefix, config, restart, env, "9.9")
    assert result.returncode == 2 and "holds no release" in result.stderr
    assert _current(prefix) == "releases/1.0"
