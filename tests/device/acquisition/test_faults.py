"""Each injected fault: the app keeps running, the modality is flagged within 2 s of clock
time, and it recovers within 5 s after the fault ends. The real pipeline on the emulated
board, on a ScaledClock; alarm times are clock times taken by an alarm listener."""

from __future__ import annotations

import errno

import pytest

from tests.device.acquisition.fault_rig import RunningPipeline, emulated_config

FLAG_S = 2.0
RECOVER_S = 5.0
SPEED = 2.0


def spi_board():
    return emulated_config(adc={"chip": "mcp3008"})


def ads1292r_board():
    return emulated_config(ecg={"source": "ads1292r", "drdy_pin": 25})


def data_ready_board():
    """The MAX30102 read on its INT edges, the ADS1115's conversions ended by ALERT/RDY."""
    return emulated_config(ppg={"int_pin": 17}, adc={"alert_pin": 27})


def lo_pins_board():
    return emulated_config(ecg={"lo_plus_pin": 5, "lo_minus_pin": 6})


# (id, config, inject(board), heal(board), alarm kind, alarm source, modality in health)
FAULTS = [
    ("i2c-unplug", emulated_config, lambda b: b.unplug("ppg"), lambda b: b.plug("ppg"),
     "sensor_missing", "ppg", "ppg"),
    ("i2c-unplug-int", data_ready_board, lambda b: b.unplug("ppg"), lambda b: b.plug("ppg"),
     "sensor_missing", "ppg", "ppg"),
    ("stuck-fifo-int", data_ready_board, lambda b: b.set_stuck("ppg"),
     lambda b: b.set_stuck("ppg", False), "fifo_stuck", "ppg", "ppg"),
    ("ads1115-stuck-rdy", data_ready_board, lambda b: b.set_stuck("adc"),
     lambda b: b.set_stuck("adc", False), "fifo_stuck", "adc", "eda"),
    ("eio-burst", emulated_config, lambda b: b.bus_errors("adc", seconds=3.0), None,
     "sensor_missing", "adc", "eda"),
    ("stuck-fifo", emulated_config, lambda b: b.set_stuck("ppg"), lambda b: b.set_stuck("ppg", False),
     "fifo_stuck", "ppg", "ppg"),
    ("stuck-accel-fifo", emulated_config, lambda b: b.set_stuck("accel"),
     lambda b: b.set_stuck("accel", False), "fifo_stuck", "accel", "accel"),
    ("finger-off", emulated_config, lambda b: b.set_state(finger_on=False),
     lambda b: b.set_state(finger_on=True), "finger_off", "ppg", "ppg"),
    ("lead-off-ad8232-rail", emulated_config, lambda b: b.set_state(leads_on=False),
     lambda b: b.set_state(leads_on=True), "lead_off", "ecg", "ecg"),
    ("lead-off-ad8232-pins", lo_pins_board, lambda b: b.set_state(leads_on=False),
     lambda b: b.set_state(leads_on=True), "lead_off", "ecg", "ecg"),
    ("gsr-open", emulated_config, lambda b: b.set_state(skin_contact=False),
     lambda b: b.set_state(skin_contact=True), "gsr_open", "eda", "eda"),
    ("spi-unplug-mcp3008", spi_board, lambda b: b.unplug("adc"), lambda b: b.plug("adc"),
     "sensor_missing", "adc", "eda"),
    ("spi-unplug-ads1292r", ads1292r_board, lambda b: b.unplug("ecg"), lambda b: b.plug("ecg"),
     "sensor_missing", "ecg", "ecg"),
    ("ads1292r-halted", ads1292r_board, lambda b: b.set_stuck("ecg"),
     lambda b: b.set_stuck("ecg", False), "fifo_stuck", "ecg", "ecg"),
    ("lead-off-ads1292r", ads1292r_board, lambda b: b.set_state(leads_on=False),
     lambda b: b.set_state(leads_on=True), "lead_off", "ecg", "ecg"),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_is_flagged_and_recovers(fault):
    name, make_config, inject, heal, kind, source, modality = fault
    with RunningPipeline(make_config(), speed=SPEED) as run:
        run.sleep(3.0)  # every sensor open and delivering
        assert not [e for e in run.alarm_events if e[1] == "raised"], run.alarm_events
        t_fault = run.now_s()
        inject(run.board)
        flagged_s = run.wait_for_alarm("raised", kind, source, t_fault, timeout_s=4.0)
        assert flagged_s is not None, (name, run.alarm_events)
        assert flagged_s <= FLAG_S, (name, flagged_s)
        run.sleep(max(0.0, 3.0 - (run.now_s() - t_fault)))
        health = run.topic("health", after_s=run.now_s() - 1.5)[-1]
        assert health["modalities"][modality]["state"] in ("missing", "off"), health
        assert kind + "/" + source in health["alarms"]
        vitals = run.topic("vitals", after_s=run.now_s() - 1.5)[-1]
        sensor = health["modalities"][modality]["sensor"]
        assert vitals["sensors"][sensor]["state"] == health["sensors"][sensor]["state"] != "ok"
        t_healed = run.now_s()
        if heal is not None:
            heal(run.board)
        recovered_s = run.wait_for_alarm("cleared", kind, source, t_healed, timeout_s=6.0)
        assert recovered_s is not None, (name, run.alarm_events)
        assert recovered_s <= RECOVER_S, (name, recovered_s)
        run.sleep(1.5)
        # The app kept running the whole time: hops every second, every reader alive.
        hops = [m["seq"] for m in run.topic("vitals", after_s=t_fault)]
        assert len(hops) >= int(run.now_s() - t_fault) - 2
        assert all(r.alive() for r in run.pipeline.readers)
        assert run.error is None
        last = run.topic("health")[-1]
        assert last["modalities"][modality]["state"] == "ok", last
        print(f"{name}: flagged after {flagged_s:.2f} s, recovered {recovered_s:.2f} s after the fault ended")


def test_overflow_is_counted_as_dropped_samples():
    """A bus stalled for 0.6 s (the deadline fails that transaction) overflows the PPG FIFO
    (32 samples = 0.32 s at 100 Hz): the lost samples show in the health message."""
    with RunningPipeline(emulated_config(), speed=SPEED) as run:
        run.sleep(3.0)
        before = run.topic("health")[-1]["sensors"]["ppg"]["dropped_samples"]
        run.board.stall("ppg", 0.6)
        run.sleep(3.0)
        health = run.topic("health")[-1]
        ppg = health["sensors"]["ppg"]
        assert ppg["dropped_samples"] - before >= 20, ppg
        assert ppg["errors"] >= 1 and ppg["state"] == "ok"
        assert all(r.alive() for r in run.pipeline.readers)


def test_crashed_reader_is_restarted_and_reported_once():
    with RunningPipeline(emulated_config(), speed=SPEED) as run:
        run.sleep(2.5)
        t_fault = run.now_s()
        run.board.crash("accel", RuntimeError("injected: not a bus error"))
        flagged_s = run.wait_for_alarm("raised", "reader_crash", "i2c-1", t_fault, timeout_s=3.0)
        assert flagged_s is not None and flagged_s <= FLAG_S, run.alarm_events
        run.sleep(2.0)
        reader = run.pipeline.readers[0]
        assert reader.alive() and reader.restarts == 1
        assert len(run.pipeline.reader_crashes) == 1
        assert "injected" in run.pipeline.reader_crashes[0]
        health = run.topic("health")[-1]
        assert health["readers"]["i2c-1"] == {"alive": True, "restarts": 1}
        # Data flows again after the restart.
        assert health["modalities"]["accel"]["state"] == "ok"
        cleared_s = run.wait_for_alarm("cleared", "reader_crash", "i2c-1", t_fault, timeout_s=9.0)
        assert cleared_s is not None


def test_spent_restart_budget_leaves_a_high_alarm(monkeypatch):
    with RunningPipeline(emulated_config(), speed=SPEED) as run:
        run.pipeline.reader_restart_budget = 1
        run.sleep(2.0)
        run.board.crash("accel", RuntimeError("first"))
        run.sleep(2.0)
        run.board.crash("accel", RuntimeError("second"))
        run.sleep(2.5)
        alarm = run.pipeline.alarms.get("reader_crash", "i2c-1")
        assert alarm is not None and alarm.priority == "high", run.alarm_events
        assert "budget" in alarm.message
        assert len(run.pipeline.reader_crashes) == 2  # once per crash, not once per hop
        assert run.error is None


def test_eio_error_code_is_in_the_reason():
    with RunningPipeline(emulated_config(), speed=SPEED) as run:
        run.sleep(2.0)
        run.board.bus_errors("accel", count=50, code=errno.EIO)
        run.sleep(1.5)
        reason = run.pipeline.health.message()["sensors"]["accel"].get("reason", "")
        assert "EIO" in reason
