"""The trunk end to end: emulated chips → real drivers → signal path → a real mosquitto."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sensors.clock import ScaledClock
from sensors.emulated.physiology import PhysiologySimulator
from sensors.emulated.scenario import Scenario
from tests.conftest import REPO

from device.app.root import build_monitor
from device.config import default_config


def write_config(tmp_path, device_id: str, scenario: str = "rest") -> str:
    path = tmp_path / "painmon.toml"
    path.write_text(f'device_id = "{device_id}"\n\n[simulator]\nseed = 7\nscenario = "{scenario}"\n')
    return str(path)


def demo_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "device.cli", "demo", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_pipeline(config, speed: float, seconds: float):
    """Run the pipeline on the emulated board; ((clock s, vitals message), ...) and its simulator."""
    clock = ScaledClock(speed=speed)
    seen: list[tuple[float, dict]] = []

    def keep_vitals(topic: str, message: dict) -> None:
        if topic == "vitals":
            seen.append((clock.now_ns() / 1e9, message))

    monitor = build_monitor(config, clock, [keep_vitals])
    pipeline = monitor.pipeline
    simulator = pipeline.board.emulated.simulator
    try:
        pipeline.run(seconds)
    finally:
        pipeline.stop()
    return seen, simulator


def test_pipeline_vitals_follow_the_simulator():
    config = default_config().model_copy(update={"simulator": default_config().simulator.model_copy(
        update={"scenario": "rest", "seed": 3})})
    seen, simulator = run_pipeline(config, speed=1.0, seconds=20.0)
    assert [m["seq"] for _, m in seen] == sorted({m["seq"] for _, m in seen})
    late = [(t, m) for t, m in seen if t >= 12.0]
    assert len(late) >= 7
    # Real threads on a real clock: on a loaded machine a reader can fall behind and a window
    # start over. Then the device says nothing (None), it never says something wrong.
    measured = 0
    for t, m in late:
        truth = simulator.hr_bpm(t - config.processing.window_s, t)
        for source in ("ppg", "ecg"):
            if m["hr_bpm"][source] is not None:
                measured += 1
                assert m["hr_bpm"][source] == pytest.approx(truth, abs=2.0), (source, t, m)
        if m["eda_us"] is not None:
            assert m["eda_us"] == pytest.approx(float(simulator.eda_us(np.array([t]))[0]), abs=0.3)
        assert m["motion_g"] is None or m["motion_g"] < 0.05
        assert all(s["state"] == "ok" for s in m["sensors"].values())
    assert measured >= 0.7 * 2 * len(late), late


def test_pipeline_ppg_follows_the_pulse_through_the_demo_walk():
    """Real drivers on the emulated board: the MAX30102 at 100 Hz and the MPU-6050 at 50 Hz,
    read by their own FIFO reads. Walking at 0.45-0.5 g, the PPG heart rate is the pulse, not
    the arm swing (about 55 bpm here), or nothing."""
    base = default_config()
    config = base.model_copy(update={"face": base.face.model_copy(update={"enabled": False})})
    seen, simulator = run_pipeline(config, speed=3.0, seconds=57.0)
    walking = [(t, m) for t, m in seen if 38.0 <= t <= 57.0]
    assert len(walking) >= 12 and all(m["motion_g"] is None or m["motion_g"] > 0.1 for _, m in walking)
    published = [(t, m["hr_bpm"]["ppg"]) for t, m in walking if m["hr_bpm"]["ppg"] is not None]
    # Real threads: on a loaded machine a reader falls behind and windows are withheld for a
    # while; what is published must be the pulse.
    assert len(published) >= 5, walking
    for t, hr in published:
        assert hr == pytest.approx(simulator.hr_bpm(t - config.processing.window_s, t), abs=4.0), (t, hr)


def test_demo_publishes_vitals_to_an_outside_broker(mosquitto, mqtt_probe, tmp_path):
    device_id = "bed-12"
    probe = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{device_id}/#")
    proc = demo_process("--seconds", "24", "--broker", f"{mosquitto.host}:{mosquitto.port}",
                        "--config", write_config(tmp_path, device_id))
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    vitals = [m.json() for m in probe.messages if m.topic == f"painmon/{device_id}/vitals"]
    assert len(vitals) >= 15, out
    seqs = [v["seq"] for v in vitals]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {v["schema"] for v in vitals} == {"painmon.vitals/1"}
    assert len({v["boot_id"] for v in vitals}) == 1

    # The rest scenario holds the heart rate; every 10 s window of the run lies in this range.
    simulator = PhysiologySimulator(Scenario.rest(), seed=7)
    truths = [simulator.hr_bpm(t - 10, t) for t in np.arange(10, 28, 0.5)]
    with_hr = [v for v in vitals if v["hr_bpm"]["ppg"] is not None]
    assert len(with_hr) >= 8, vitals
    for v in with_hr:
        for source in ("ppg", "ecg"):
            assert min(truths) - 3 <= v["hr_bpm"][source] <= max(truths) + 3, v
    # The console shows what came back over MQTT.
    assert out.count("vitals  #") >= 15


def test_killed_demo_leaves_a_retained_offline(mosquitto, mqtt_probe, tmp_path):
    device_id = "bed-13"
    status = f"painmon/{device_id}/status"
    probe = mqtt_probe(mosquitto.host, mosquitto.port, status)
    proc = demo_process("--broker", f"{mosquitto.host}:{mosquitto.port}",
                        "--config", write_config(tmp_path, device_id))
    try:
        probe.wait_for(lambda m: m.json()["state"] == "online", timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    probe.wait_for(lambda m: m.json()["state"] == "offline", timeout=15)
    late = mqtt_probe(mosquitto.host, mosquitto.port, status)
    retained = late.wait_for(lambda m: m.retain, timeout=5)
    assert retained.json()["state"] == "offline"


def test_demo_starts_its_own_broker_when_none_is_given(tmp_path):
    """No --broker: with nothing on localhost:1883 the demo brings a loopback-only broker."""
    from device.app.broker import broker_answers

    if broker_answers("127.0.0.1", 1883):
        pytest.skip("a broker already answers on localhost:1883; the demo would use it")
    started = time.monotonic()
    proc = demo_process("--seconds", "3", "--speed", "2",
                        "--config", write_config(tmp_path, "bed-14"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "started one on 127.0.0.1:" in out
    assert out.count("vitals  #") >= 2, out
    assert time.monotonic() - started < 30
