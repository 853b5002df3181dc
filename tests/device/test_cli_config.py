from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from device.cli import main
from device.config import HARDWARE_ENV, reference_markdown

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HARDWARE_ENV, raising=False)


def test_validate_good_file(tmp_path, capsys):
    path = tmp_path / "good.toml"
    path.write_text('device_id = "bed-1"\n[mqtt]\nport = 1884\n')
    assert main(["validate-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok\n" and err == ""


def test_validate_bad_file_prints_each_problem(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("device_id = \"bed-1\"\n[mqtt]\nbogus = 1\nport = 0\n[sensors.ppg]\nsample_rate_hz = 120\n")
    assert main(["validate-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert f"{path}: mqtt.bogus: unknown key" in lines
    assert sorted(line.split(": ")[1] for line in lines) == [
        "mqtt.bogus", "mqtt.port", "sensors.ppg.sample_rate_hz"]


def test_validate_missing_file(tmp_path, capsys):
    path = tmp_path / "absent.toml"
    assert main(["validate-config", str(path)]) == 2
    assert capsys.readouterr().err == f"{path}: no such file\n"


def test_validate_syntax_error(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text("[mqtt\nport = 1\n")
    assert main(["validate-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: line 1, column ")


def test_config_reference(capsys):
    assert main(["config-reference"]) == 0
    assert capsys.readouterr().out == reference_markdown()


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert "usage: painmon" in capsys.readouterr().err


def test_example_validates_through_a_real_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(HARDWARE_ENV, None)
    example = REPO / "systemd" / "painmon.example.toml"
    done = subprocess.run([sys.executable, "-m", "device.cli", "validate-config", str(example)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, f"{example}: ok\n"), done.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text("device_id = \"bed-1\"\n[sensors.gsr]\nadc_channel = 1\n")
    done = subprocess.run([sys.executable, "-m", "device.cli", "validate-config", str(bad)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{bad}: sensors.gsr.adc_channel: ")
    assert "sensors.ecg.adc_channel" in done.stderr
