"""The demo's pain episode end to end: the emulated subject's pain drives both the physiology
and the demo photo's grimace; the real face path measures it, fusion raises the estimate and
the pain alarm fires and clears."""

from __future__ import annotations

import statistics

from sensors.clock import ScaledClock
from sensors.emulated.scenario import Scenario

from device.app.demo import demo_pain
from device.app.root import build_monitor
from device.config import default_config

# Scenario.demo(): at rest until 80 s, pain rising to 6 at 90 s, 5 at 130 s, gone at 150 s.
START_S = 62.0  # the walk is over, the subject rests
ONSET_S, PLATEAU_S, EASING_S, GONE_S = 80.0, (95.0, 128.0), 130.0, 150.0
LAST_S = 175.0


def test_demo_pain_episode_raises_the_estimate_and_the_alarm(tmp_path, face_model_dir):
    scenario = Scenario.demo()
    assert scenario.state_at(START_S).pain == 0 and scenario.state_at(100.0).pain >= 5
    base = demo_pain(default_config())
    config = base.model_copy(update={
        "state_dir": tmp_path, "hardware": "emulated",
        "face": base.face.model_copy(update={"model_dir": face_model_dir}),
        "simulator": base.simulator.model_copy(update={"scenario": "demo"}),
        "pain": base.pain.model_copy(update={
            "alarm_threshold": 3.5, "alarm_after_s": 5.0, "alarm_clear_after_s": 5.0,
            "alarm_escalate_after_s": 600.0})})
    clock = ScaledClock(1.0, start_ns=round(START_S * 1e9))
    faces: list[tuple[float, dict]] = []
    pains: list[tuple[float, dict]] = []
    alarms: list[tuple[float, str]] = []

    def keep(topic: str, message: dict) -> None:
        t_s = clock.now_ns() / 1e9
        if topic == "face":
            faces.append((t_s, message))
        elif topic == "pain":
            pains.append((t_s, message))
        elif topic == "alarm" and message.get("kind") == "pain_high":
            alarms.append((t_s, message["event"]))

    monitor = build_monitor(config, clock, [keep], face_calibrate_frames=10,
                            face_follows_scenario=True)
    pipeline = monitor.pipeline
    assert pipeline.face.expression is not None  # the photo's face follows the scenario
    try:
        while clock.now_ns() / 1e9 < LAST_S:
            pipeline.run(2.0)
            if clock.now_ns() / 1e9 > GONE_S + 8 and any(e == "cleared" for _, e in alarms):
                break
    finally:
        pipeline.stop()

    def face_scores(t0: float, t1: float) -> list[float]:
        return [m["score"] for t, m in faces if t0 <= t < t1 and m["score"] is not None
                and "calibrating" not in m["flags"] and "uncalibrated" not in m["flags"]]

    def pain_scores(t0: float, t1: float) -> list[float]:
        return [m["score"] for t, m in pains if t0 <= t < t1 and m["score"] is not None]

    before, during, after = face_scores(0, ONSET_S), face_scores(*PLATEAU_S), face_scores(GONE_S, LAST_S)
    assert len(before) >= 2 and len(during) >= 10 and len(after) >= 3, (before, during, after)
    assert statistics.median(before) < 1.0, before
    assert statistics.median(during) > 3.5, during
    assert statistics.median(during) > statistics.median(before) + 3.0
    assert statistics.median(after) < 1.0, after

    fused_during, fused_after = pain_scores(*PLATEAU_S), pain_scores(GONE_S + 5, LAST_S)
    assert max(fused_during) >= config.pain.alarm_threshold, fused_during
    assert statistics.median(fused_during) > 3.0, fused_during
    assert fused_after and max(fused_after) < 2.0, fused_after
    last = [m for t, m in pains if PLATEAU_S[0] <= t < PLATEAU_S[1]][-1]
    assert last["contributions"]["face"]["score"] is not None
    assert last["contributions"]["face"]["weight"] > 0

    fused = [(round(t), m["score"] and round(m["score"], 1)) for t, m in pains]
    raised = [t for t, e in alarms if e == "raised" and ONSET_S < t < EASING_S]
    assert raised, (alarms, fused)
    cleared = [t for t, e in alarms if e == "cleared" and t > raised[0]]
    assert cleared and EASING_S < cleared[0] < GONE_S + 15, (alarms, fused)
