"""The board variants from the configuration: the SPI ADC and the ADS1292R ECG, end to end."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sensors.clock import ScaledClock, SteppedClock
from tests.conftest import REPO

from device.acquisition.board import build_board
from device.app.root import build_monitor
from device.config import ConfigError, default_config, load_config, validate_config

VARIANTS = ["painmon.spi-board.toml", "painmon.ads1292r.toml"]


def emulated(path):
    config = load_config(REPO / "systemd" / path)
    return config.model_copy(update={
        "hardware": "emulated", "face": config.face.model_copy(update={"enabled": False})})


@pytest.mark.parametrize("path", VARIANTS)
def test_pipeline_on_each_variant_gets_ecg_heart_rate_and_eda(path):
    config = emulated(path)
    clock = ScaledClock(1.0)  # the busy 2-core machine keeps up with the signal path at x1
    seen: list[tuple[float, dict]] = []
    monitor = build_monitor(config, clock, [lambda topic, m: topic == "vitals" and seen.append(
        (clock.now_ns() / 1e9, m))])
    pipeline = monitor.pipeline
    simulator = pipeline.board.emulated.simulator
    try:
        pipeline.run(16.0)
    finally:
        pipeline.stop()
    late = [(t, m) for t, m in seen if t >= 12.0]
    assert len(late) >= 3, seen
    # On a loaded machine a reader can fall behind and a window start over: then the device
    # reports nothing (None) for a while, never a wrong value.
    measured = 0
    for t, m in late:
        truth = simulator.hr_bpm(t - config.processing.window_s, t)
        if m["hr_bpm"]["ecg"] is not None:
            measured += 1
            assert m["hr_bpm"]["ecg"] == pytest.approx(truth, abs=3.0), (t, m)
        if m["eda_us"] is not None:
            assert m["eda_us"] == pytest.approx(float(simulator.eda_us(np.array([t]))[0]), abs=0.3)
        assert all(s["state"] == "ok" for s in m["sensors"].values()), m["sensors"]
    assert measured >= len(late) / 2, late
    assert sum(m["eda_us"] is not None for _, m in late) >= len(late) / 2, late


def test_variants_build_the_matching_drivers():
    clock = SteppedClock()
    spi = build_board(emulated("painmon.spi-board.toml"), clock)
    ads = build_board(emulated("painmon.ads1292r.toml"), clock)
    try:
        assert set(spi.sensors_by_bus) == {"i2c-1", "spi-0"}
        assert type(spi.sensors_by_bus["spi-0"][0].acquirer.adc).__name__ == "Mcp3008"
        assert spi.lead_off_pins is not None and not spi.lead_off_pins.lead_off
        assert [s.name for s in ads.sensors_by_bus["spi-0"]] == ["ecg"]
        assert ads.ecg_chip is not None and ads.ecg_chip.data_rate_sps == 250
        assert ads.ecg_frontend is None and ads.gsr is not None
    finally:
        spi.close()
        ads.close()


def test_data_ready_pins_from_the_config_reach_the_drivers():
    """sensors.ppg.int_pin and sensors.adc.alert_pin: the emulated MAX30102 and ADS1115 drive
    those mock pins, the drivers read on their edges."""
    from device.app.demo import demo_wiring
    from device.config import default_config

    config = demo_wiring(default_config()).model_copy(update={"hardware": "emulated"})
    clock = ScaledClock(1.0)
    board = build_board(config, clock)
    try:
        by_name = {s.name: s for s in board.sensors}
        for sensor in by_name.values():
            assert sensor.open(), sensor.status
        ppg = by_name["ppg"].acquirer.driver
        adc = by_name["adc"].acquirer.adc
        assert ppg.data_ready is not None and adc.ready_pin is not None
        assert ppg.poll_interval_s > 0.2  # the timer is the safety net; INT paces the reads
        assert ppg.data_ready.wait(1.0)  # A_FULL after 17 samples
        blocks = by_name["ppg"].step() or by_name["ppg"].step()
        assert len(blocks[0].samples) >= 17
        assert adc.read_voltage(0, 4.096) > 0 and adc.missed_ready_edges == 0
    finally:
        for sensor in board.sensors:
            sensor.close()
        board.close()


def test_missing_spidev_marks_the_sensor_missing_not_the_app():
    config = load_config(REPO / "systemd" / "painmon.ads1292r.toml")
    board = build_board(config.model_copy(update={"hardware": "real"}), SteppedClock())
    ecg = next(s for s in board.sensors if s.name == "ecg")
    assert not ecg.open()
    assert ecg.status.state == "missing" and "spidev0.1" in ecg.status.reason
    board.close()


def test_a_bus_the_emulated_board_lacks_marks_the_sensor_missing_not_the_app():
    """As on a Pi where /dev/i2c-0 is not enabled: the board is built, the sensor is missing."""
    config = default_config()
    sensors = config.sensors.model_copy(update={
        "adc": config.sensors.adc.model_copy(update={"i2c_bus": 0})})
    board = build_board(config.model_copy(update={"hardware": "emulated", "sensors": sensors}),
                        SteppedClock())
    adc = next(s for s in board.sensors if s.name == "adc")
    assert not adc.open()
    assert adc.status.state == "missing" and "i2c-0" in adc.status.reason
    assert next(s for s in board.sensors if s.name == "ppg").open()  # the rest works
    board.close()


@pytest.mark.parametrize("data,key", [
    ({"adc": {"chip": "mcp3008"}, "ecg": {"source": "ads1292r", "spi_device": 0}},
     "sensors.ecg.spi_device"),
    ({"gsr": {"adc_channel": 6}}, "sensors.gsr.adc_channel"),
    ({"ecg": {"lo_plus_pin": 5}}, "sensors.ecg.lo_minus_pin"),
    ({"ecg": {"drdy_pin": 25}}, "sensors.ecg.drdy_pin"),
    ({"ecg": {"source": "ads1292r", "lo_plus_pin": 5, "lo_minus_pin": 6}}, "sensors.ecg.lo_plus_pin"),
    ({"adc": {"chip": "mcp3008", "alert_pin": 27}}, "sensors.adc.alert_pin"),
    ({"ppg": {"int_pin": 10}, "adc": {"chip": "mcp3008"}}, "sensors.ppg.int_pin"),
    ({"ppg": {"int_pin": 17}, "ecg": {"lo_plus_pin": 17, "lo_minus_pin": 6}},
     "sensors.ecg.lo_plus_pin"),
    ({"ecg": {"data_rate_sps": 1000}}, "sensors.ecg.data_rate_sps"),
])
def test_wiring_mistakes_name_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        validate_config({"sensors": data}, "f.toml")
    assert [p.key for p in err.value.problems] == [key], err.value


def test_ads1292r_frees_the_adc_from_the_ecg_rate():
    # With the ECG on the ADS1292R, a slow ADS1115 serves the GSR alone.
    config = validate_config({"sensors": {"ecg": {"source": "ads1292r"},
                                          "adc": {"data_rate_sps": 16}}})
    assert config.sensors.adc.data_rate_sps == 16


def test_demo_runs_the_spi_variant(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "device.cli", "demo", "--config",
         str(REPO / "systemd" / "painmon.spi-board.toml"), "--seconds", "4", "--speed", "2",
         "--camera", "photo"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("vitals  #") >= 2, proc.stdout
