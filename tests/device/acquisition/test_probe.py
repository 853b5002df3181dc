"""painmon probe against the emulated board: every chip listed, a pulled one named."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sensors.clock import SteppedClock
from tests.conftest import REPO
from tests.device.acquisition.fault_rig import emulated_config

from device.acquisition.board import emulated_board
from device.acquisition.probe import format_table, probe
from device.config import default_config


def test_probe_cli_lists_every_chip_of_the_emulated_board():
    proc = subprocess.run([sys.executable, "-m", "device.cli", "probe"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for address, chip in (("0x57", "MAX3010x"), ("0x68", "MPU-6050"), ("0x48", "ADS1115")):
        row = next(line for line in lines if f" {address} " in line)
        assert chip in row and row.rstrip().endswith("ok"), row
    assert any(line.startswith("camera") and line.rstrip().endswith("ok") for line in lines)


def test_probe_finds_the_spi_chips():
    config = emulated_config(adc={"chip": "mcp3008"}, ecg={"source": "ads1292r"})
    rows = {r.address: r for r in probe(config, clock=SteppedClock())}
    assert rows["spidev0.0"].found.startswith("MCP3008") and rows["spidev0.0"].status == "ok"
    assert rows["spidev0.1"].found.startswith("ADS1292R") and rows["spidev0.1"].status == "ok"
    assert "0x48" not in rows  # the ADS1115 is not part of this board


def test_unplugged_chips_make_probe_fail_and_are_named(tmp_path):
    clock = SteppedClock()
    config = emulated_config(adc={"chip": "mcp3008"}, ecg={"source": "ads1292r"})
    board = emulated_board(config, clock)
    try:
        board.unplug("accel")
        board.unplug("ecg")
        rows = probe(config, emulated=board, clock=clock)
    finally:
        board.close()
    problems = {r.expected: r for r in rows if r.problem}
    assert set(problems) == {"MPU-6050", "ADS1292R"}, format_table(rows)
    assert problems["MPU-6050"].found == "" and problems["MPU-6050"].status == "missing"
    assert "MISO stuck" in problems["ADS1292R"].found
    table = format_table(rows)
    assert "MPU-6050" in table and "missing" in table


def test_missing_bus_exits_non_zero_and_names_the_chips(tmp_path):
    """The real-hardware path on a machine without /dev/i2c-1: every configured chip missing."""
    if os.path.exists("/dev/i2c-1"):
        pytest.skip("this machine has /dev/i2c-1")
    path = tmp_path / "painmon.toml"
    path.write_text('[face]\nenabled = false\n')
    proc = subprocess.run([sys.executable, "-m", "device.cli", "probe", "--config", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PAINMON_HARDWARE": "real"})
    assert proc.returncode == 1, proc.stdout
    for chip, address in (("MAX30102", "0x57"), ("MPU-6050", "0x68"), ("ADS1115", "0x48")):
        assert f"{chip} (i2c-1 {address}: missing)" in proc.stderr
    assert "/dev/i2c-1" in proc.stdout


def test_wrong_chip_is_reported():
    clock = SteppedClock()
    config = default_config().model_copy(update={"hardware": "emulated"})
    board = emulated_board(config, clock)
    try:
        board.chips["accel"].who_am_i = 0x70  # an MPU-6500 answering at 0x68
        board.chips["accel"].regs.set("WHO_AM_I", 0x70)
        rows = probe(config, emulated=board, clock=clock)
    finally:
        board.close()
    row = next(r for r in rows if r.address == "0x68")
    assert row.status == "wrong chip" and row.found == "unknown device"
