"""The unit file and the install script: systemd's own checker, and what the unit promises."""

from __future__ import annotations

import configparser
import shutil
import subprocess

import pytest

from tests.conftest import REPO

from device.app.notify import MQTT_PASSWORD_CREDENTIAL

UNIT = REPO / "systemd" / "painmon.service"
INSTALLED_BIN = "/opt/painmon/current/venv/bin/painmon"


def unit_settings() -> dict[str, list[str]]:
    """Every Key=value of the unit, keys may repeat (systemd allows it)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        # Installing it means the Debian package "systemd": heavy, and it wants to be PID 1.
        pytest.skip("systemd-analyze not installed (Debian package 'systemd'); unit not verified")
    return found


def _unit_with_stub(tmp_path):
    """The unit with ExecStart pointing at a stub: verify checks the binary exists."""
    stub = tmp_path / "painmon"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / "painmon.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_BIN, str(stub)))
    return unit


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = _systemd_analyze()
    result = subprocess.run(check=False, args=[analyze, "verify", str(_unit_with_stub(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "painmon.service" not in result.stderr, result.stderr  # no warnings about the unit


def test_unit_exposure_is_low(tmp_path):
    analyze = _systemd_analyze()
    result = subprocess.run(check=False, args=[analyze, "security", "--offline=yes", "--threshold=30",
                             str(_unit_with_stub(tmp_path))], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level for painmon.service" in result.stdout


def test_unit_promises():
    s = unit_settings()
    assert s["Type"] == ["notify"]
    assert s["Restart"] == ["always"]
    assert float(s["WatchdogSec"][0]) > 0
    assert int(s["StartLimitBurst"][0]) >= 1 and int(s["StartLimitIntervalSec"][0]) > 0
    assert s["User"] == ["painmon"]
    assert set(s["SupplementaryGroups"][0].split()) == {"gpio", "i2c", "spi", "video"}
    assert s["StateDirectory"] == ["painmon"]
    assert s["LoadCredential"][0].startswith(f"{MQTT_PASSWORD_CREDENTIAL}:")
    for key in ("ProtectSystem", "NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert key in s, key
    assert s["ProtectSystem"] == ["strict"]
    # The buses and the camera are devices: nothing may hide them or close the device policy.
    for hides in ("PrivateDevices", "DeviceAllow", "DevicePolicy", "ProtectClock"):
        assert hides not in s, hides
    families = set(s["RestrictAddressFamilies"][0].split())
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= families
    assert any("painmon run --config" in v for v in s["ExecStart"])


def test_unit_parses_as_ini():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text())
    assert {"Unit", "Service", "Install"} <= set(parser.sections())


def test_install_script_dry_run_does_every_step():
    result = subprocess.run(check=False, args=["bash", str(REPO / "tools" / "install-pi.sh"), "--dry-run",
                             "--no-start"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in ("useradd --system", "python3 -m venv --system-site-packages",
                 "/opt/painmon/releases/VERSION/venv", "requirements/device-py313-",
                 "/opt/painmon/current", "python3-numpy", "python3-spidev",
                 "painmon.example.toml /etc/painmon/painmon.toml", "/etc/painmon/mqtt-password",
                 "validate-config /etc/painmon/painmon.toml", "fetch-models",
                 "/etc/systemd/system/painmon.service", "systemctl enable painmon.service"):
        assert step in out, step
    assert "enable --now" not in out and "systemctl restart" not in out
    assert "opencv" not in out  # the Pi camera needs no OpenCV; --opencv asks for the distribution's


def test_install_script_takes_opencv_from_the_distribution():
    result = subprocess.run(check=False, args=["bash", str(REPO / "tools" / "install-pi.sh"), "--dry-run",
                             "--opencv"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "python3-opencv" in result.stdout and "opencv-python" not in result.stdout
    # A running service is upgraded through device.app.upgrade, which rolls back by itself.
    assert "-m device.app.upgrade VERSION --prefix /opt/painmon" in result.stdout


def test_install_script_refuses_unknown_options():
    result = subprocess.run(check=False, args=["bash", str(REPO / "tools" / "install-pi.sh"), "--frobnicate"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--frobnicate" in result.stderr
