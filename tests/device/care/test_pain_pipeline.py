"""The pain estimate in the running pipeline: the pain topic, a stay (its calibration and its
pending reassessment) surviving a restart, a local alarm with no network at all, and a device
left with one sensor."""

from __future__ import annotations

import json

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from sensors.clock import ScaledClock

from device.app.root import build_monitor
from device.config import default_config


@pytest.fixture
def mock_pins():
    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = previous


def make_config(tmp_path, *, face=False, scenario="rest", **sections):
    base = default_config()
    update = {"state_dir": tmp_path,
              "face": base.face.model_copy(update={"enabled": face, "fps": 4.0}),
              "simulator": base.simulator.model_copy(update={"scenario": scenario})}
    for name, values in sections.items():
        update[name] = getattr(base, name).model_copy(update=values)
    return base.model_copy(update=update)


def run(pipeline, seconds):
    try:
        pipeline.run(seconds)
    finally:
        pipeline.stop()


def test_pain_topic_once_per_hop_with_its_schema(tmp_path):
    seen = []
    monitor = build_monitor(make_config(tmp_path), ScaledClock(1.0), [lambda t, m: seen.append((t, m))])
    pipeline = monitor.pipeline
    run(pipeline, 5.0)
    pains = [m for t, m in seen if t == "pain"]
    vitals = [m for t, m in seen if t == "vitals"]
    assert len(pains) == len(vitals) >= 4
    m = pains[-1]
    assert m["schema"] == "painmon.pain/1" and m["device_id"] == "painmon-demo"
    assert {"boot_id", "seq", "t", "score", "level", "confidence", "contributions", "flags",
            "calibrated", "personalised"} <= set(m)
    assert m["seq"] > vitals[-1]["seq"]
    json.dumps(m, allow_nan=False)  # strict JSON
    # the face is switched off and the physio model is still warming up: no score, and said so
    assert "face_missing" in m["flags"]
    assert m["personalised"] is False and m["calibrated"] is False
    assert set(monitor.commands.commands) >= {"calibrate", "self_report", "acknowledge",
                                              "admit", "discharge", "painad", "cpot", "analgesia"}
    assert m["stay"] is None  # no admission: no stay, and no personal data taken
    refused = monitor.commands.handle("calibrate", b'{"duration_s": 30}')
    assert not refused["ok"] and "admit" in refused["reason"]


def test_stay_calibration_and_pending_reassessment_survive_a_restart(tmp_path):
    # A dose by mouth is reassessed 0.1 min (6 s) later here, so the restart test stays short.
    config = make_config(tmp_path, care={"reassess_min": default_config().care.reassess_min
                                         .model_copy(update={"oral": 0.1})})
    monitor = build_monitor(config, ScaledClock(1.0), [])
    pipeline = monitor.pipeline
    assert monitor.commands.handle("admit", b'{"reference": "enc-4711", "bed": "3B"}')["ok"]
    pipeline.run(4.0)  # the signals flowing before the patient is asked to rest
    answer = monitor.commands.handle("calibrate", b'{"duration_s": 30}')
    assert answer["ok"] and answer["result"]["state"] == "running"
    assert not monitor.commands.handle("calibrate", b'{"duration_s": 30}')["ok"]  # one at a time
    assert not monitor.commands.handle("calibrate", b'{"duration_s": 5}')["ok"]  # too short
    seen = []
    pipeline.outputs.append(lambda t, m: seen.append((t, m)))
    try:
        pipeline.run(31.0)
        for _ in range(10):  # hops skipped under CPU load: the calibration waits for its steps
            if monitor.pain.calibration.run is None:
                break
            pipeline.run(3.0)
        pipeline.run(1.0)
        # a dose just before the restart: its reassessment falls due after the restart
        dose = monitor.commands.handle("analgesia", b'{"route": "oral", "drug_class": "paracetamol"}')
    finally:
        pipeline.stop()
    assert dose["ok"] and dose["result"]["reassess_after_min"] == 0.1
    last = [m for t, m in seen if t == "pain"][-1]
    assert last["calibration"]["last"]["physio"] == "ok", last["calibration"]
    assert last["calibration"]["calibrated"]["physio"] is True
    assert last["stay"] == "enc-4711"
    stay_dir = tmp_path / "stays" / "1"
    stored = json.loads((stay_dir / "calibration.json").read_text())
    assert stored["schema"] == "painmon.calibration/1"
    centers = stored["physio"]["centers"]
    assert 50 < centers["hr_bpm"] < 90 and centers["eda_tonic_us"] > 0.5
    assert not list(stay_dir.glob(".calibration.json.*"))  # no temp file left behind
    assert not (tmp_path / "calibration.json").exists()  # nothing personal outside the stay

    restarted_monitor = build_monitor(config, ScaledClock(1.0), [])
    restarted = restarted_monitor.pipeline
    notices = []
    restarted.alarms.listeners.append(lambda e, a: notices.append((e, a.kind, a.stay)))
    try:
        assert restarted_monitor.bedside.stay.reference == "enc-4711"
        baseline = restarted.physio.estimator.baseline
        assert baseline is not None and baseline.centers["hr_bpm"] == pytest.approx(centers["hr_bpm"])
        assert restarted_monitor.pain.calibration.calibrated["physio"] is True
        assert len(restarted_monitor.bedside._pending) == 1
        restarted.run(8.0)
        assert ("raised", "reassessment_due", "enc-4711") in notices
        rating = restarted_monitor.commands.handle("self_report", b'{"nrs": 2, "source": "nurse"}')
        assert rating["ok"] and rating["result"]["reassessed"][0]["dose_id"] == dose["result"]["dose_id"]
        assert notices[-1] == ("cleared", "reassessment_due", "enc-4711")
    finally:
        restarted.stop()


def test_local_alarm_with_no_network_at_all(tmp_path, mock_pins):
    # No outputs at all (no MQTT); the demo photo's first second is its neutral face, then it
    # grimaces and the threshold is low, so the alarm path is exercised end to end at once:
    # fusion -> AlarmBook -> LED and buzzer pins. (The photo's own smile is not pain: it needs
    # the grimace, read against the neutral face as on a calibrated device.)
    config = make_config(tmp_path, face=True, pain={"alarm_threshold": 0.5, "alarm_after_s": 0.0,
                                                    "alarm_escalate_after_s": 3.0},
                         alarm={"led_high_pin": 17, "led_medium_pin": 27, "buzzer_pin": 22})
    monitor = build_monitor(config, ScaledClock(1.0), [], face_calibrate_frames=4)
    pipeline = monitor.pipeline
    pipeline.face.expression = lambda t_s: 0.0 if t_s < 1.5 else 0.8  # 4 fps: 6 neutral frames
    red, yellow, buzzer = (mock_pins.pin(n) for n in (17, 27, 22))
    history = []
    pipeline.alarms.listeners.append(lambda e, a: history.append((e, a.kind, a.priority)))
    import threading

    samples = []
    stop = threading.Event()

    def sample():
        while not stop.wait(0.05):
            samples.append((red.state, yellow.state, buzzer.state))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run(pipeline, 9.0)
    finally:
        stop.set()
        sampler.join()
    assert ("raised", "pain_high", "medium") in history
    assert ("escalated", "pain_high", "high") in history
    assert any(s[1] for s in samples) and any(s[0] for s in samples)  # yellow, then red
    assert any(s[2] for s in samples) and not all(s[2] for s in samples)  # buzzer pulses
    assert (red.state, yellow.state, buzzer.state) == (False, False, False)  # dark once stopped


def test_every_sensor_but_the_camera_gone(tmp_path):
    seen = []
    config = make_config(tmp_path, face=True)
    monitor = build_monitor(config, ScaledClock(1.0), [lambda t, m: seen.append((t, m))],
                        face_calibrate_frames=4)
    pipeline = monitor.pipeline
    for name in ("ppg", "accel", "adc"):
        pipeline.board.emulated.unplug(name)
    run(pipeline, 10.0)
    pains = [m for t, m in seen if t == "pain"]
    late = pains[-3:]
    for m in late:
        assert m["score"] is not None and 0 <= m["score"] <= 10  # still an estimate, from the face
        assert m["contributions"]["face"]["weight"] == 1.0
        assert {"physio_missing", "sensor_off"} <= set(m["flags"])
        assert m["confidence"] <= 0.5
    vitals = [m for t, m in seen if t == "vitals"][-1]
    assert all(s["state"] != "ok" for s in vitals["sensors"].values())
