"""The pain stage without the pipeline: alarm timing, escalation and acknowledgement on
gpiozero mock pins, the buttons, self-reports and the refit, export-labels."""

from __future__ import annotations

import csv
import json

import pytest
from gpiozero.pins.mock import MockFactory

from models.modality import ModalityEstimate
from sensors.clock import SteppedClock

from device.care.bedside import Bedside
from device.care.buttons import Buttons
from device.care.indicators import AlarmOutput, buzzer_pattern, led_pattern
from device.care.pain import PAIN_ALARM, PainStage
from device.cli import main as cli_main
from device.config import default_config
from device.processing.alarms import AlarmBook
from device.processing.commands import CommandRouter

RED, YELLOW, BUZZER, ACK, REPORT = 17, 27, 22, 5, 6


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def config(tmp_path, **pain):
    base = default_config()
    return base.model_copy(update={
        "state_dir": tmp_path, "pain": base.pain.model_copy(update=pain),
        "alarm": base.alarm.model_copy(update={
            "led_high_pin": RED, "led_medium_pin": YELLOW, "buzzer_pin": BUZZER}),
        "buttons": base.buttons.model_copy(update={
            "acknowledge_pin": ACK, "report_pin": REPORT, "hold_s": 0.5})})


def face(score):
    return ModalityEstimate("face", score, 0.9, 0.9, {"pspi": score * 1.6, "au4": score / 2})


def physio(score):
    return ModalityEstimate("physio", score, 0.9, 0.9, {"arousal_probability": score / 10})


def stage_for(cfg, clock, factory, admit="t-0001"):
    """A pain stage with its bedside; a patient admitted (a stay left open continues)."""
    book = AlarmBook(clock)
    router = CommandRouter(clock, rate_per_s=100, burst=100)
    stage = PainStage(cfg, clock, alarms=book, pin_factory=factory)
    stage.register(router)
    bedside = Bedside(cfg, clock, pain=stage, alarms=book)
    bedside.register(router)
    if admit and bedside.stay is None:
        bedside.admit(admit)
    stage.start()
    stage.output.close()  # the ticker thread: these tests render by hand on a stepped clock
    stage.output = AlarmOutput.from_config(book, clock, cfg.alarm, factory)
    return stage, book, router


def hop(stage, clock, score, seconds=1):
    for _ in range(seconds):
        clock.advance(1.0)
        stage.update(clock.now_ns(), physio=physio(score), face=face(score), motion_g=0.0)


def pins(factory, clock, output, seconds, step=0.05):
    """(red, yellow, buzzer) pin states sampled over ``seconds`` of clock time."""
    out = []
    for _ in range(round(seconds / step)):
        output.render()
        out.append(tuple(factory.pin(n).state for n in (RED, YELLOW, BUZZER)))
        clock.advance(step)
    return out


def test_patterns_follow_the_priorities():
    assert led_pattern("high", False, 0.1) == (True, False)
    assert led_pattern("high", False, 0.3) == (False, False)
    assert led_pattern("medium", False, 0.5) == (False, True)
    assert led_pattern("medium", False, 1.5) == (False, False)
    assert led_pattern("low", False, 7.0) == (False, True)
    assert led_pattern(None, True, 7.0) == (False, True)
    assert led_pattern(None, False, 7.0) == (False, False)
    assert sum(buzzer_pattern("high", k * 0.01) for k in range(600)) > \
        sum(buzzer_pattern("medium", k * 0.01) for k in range(600)) > 0
    assert not any(buzzer_pattern("low", k * 0.1) for k in range(100))


def test_pain_alarm_fires_escalates_is_acknowledged_and_clears(tmp_path, factory):
    cfg = config(tmp_path, alarm_threshold=6.0, alarm_after_s=10.0, alarm_clear_after_s=5.0,
                 alarm_escalate_after_s=20.0, smoothing_s=0.0)
    clock = SteppedClock()
    stage, book, router = stage_for(cfg, clock, factory)
    events = []
    book.listeners.append(lambda e, a: events.append((e, a.priority)))
    hop(stage, clock, 8.0, 9)
    assert book.get(*PAIN_ALARM) is None  # not long enough yet
    assert set(pins(factory, clock, stage.output, 1.0)) == {(False, False, False)}
    hop(stage, clock, 8.0, 1)  # 10 s above the threshold, counting the second sampled above
    alarm = book.get(*PAIN_ALARM)
    assert alarm is not None and alarm.priority == "medium" and alarm.category == "physiological"
    # medium: yellow flashes at 0.5 Hz, red dark, the buzzer sounds its bursts
    states = pins(factory, clock, stage.output, 4.0)
    yellow = [s[1] for s in states]
    assert not any(s[0] for s in states)
    assert 0.4 < sum(yellow) / len(yellow) < 0.6 and yellow[0] and not yellow[25]
    assert any(s[2] for s in states)
    # not acknowledged within 20 s: high priority, red flashing at 2 Hz
    clock.advance(20.0)
    book.tick()
    assert book.get(*PAIN_ALARM).priority == "high" and ("escalated", "high") in events
    states = pins(factory, clock, stage.output, 2.0)
    red = [s[0] for s in states]
    assert 0.4 < sum(red) / len(red) < 0.6 and red[0] and not red[5] and red[10]
    assert not any(s[1] for s in states)
    # acknowledged by command: the buzzer stops, the yellow LED stays on steadily
    result = router.handle("acknowledge", json.dumps({"alarm_id": "all", "by": "nurse"}).encode())
    assert result["ok"] and result["result"]["acknowledged"] == [alarm.id]
    assert set(pins(factory, clock, stage.output, 3.0)) == {(False, True, False)}
    refused = router.handle("acknowledge", b'{"alarm_id": "999"}')
    assert not refused["ok"] and "999" in refused["reason"]
    # the score falls: cleared after 5 s below threshold - margin; everything dark
    hop(stage, clock, 5.8, 6)
    assert book.get(*PAIN_ALARM) is not None  # inside the hysteresis band: no clearing
    hop(stage, clock, 2.0, 6)
    assert book.get(*PAIN_ALARM) is None and events[-1][0] == "cleared"
    assert set(pins(factory, clock, stage.output, 1.0)) == {(False, False, False)}
    stage.stop()


def test_acknowledge_button_and_long_press_calibration(tmp_path, factory):
    cfg = config(tmp_path, alarm_threshold=6.0, alarm_after_s=0.0, smoothing_s=0.0)
    clock = SteppedClock()
    stage, book, _ = stage_for(cfg, clock, factory)
    calls = []
    stage._button_calibrate = lambda: calls.append("calibrate")
    stage.buttons.on_calibrate = stage._button_calibrate
    hop(stage, clock, 9.0, 1)
    assert book.loudest() == "medium"
    button = factory.pin(ACK)
    button.drive_low()
    button.drive_high()  # a short press
    assert book.loudest() is None and book.get(*PAIN_ALARM).state == "acknowledged"
    assert book.get(*PAIN_ALARM).acknowledged_by == "button"
    import time

    button.drive_low()
    time.sleep(0.8)  # held past hold_s (gpiozero times holds in real time)
    button.drive_high()
    assert calls == ["calibrate"]
    stage.stop()


def test_report_button_sequences(tmp_path, factory):
    clock = SteppedClock()
    reports = []
    buttons = Buttons(clock, report_pin=REPORT, hold_s=0.3, report_window_s=2.0,
                      report_source="patient", on_report=lambda n, s: reports.append((n, s)),
                      pin_factory=factory)
    pin = factory.pin(REPORT)
    for _ in range(4):
        pin.drive_low()
        pin.drive_high()
        clock.advance(0.5)
    assert buttons.tick() is None and buttons.pending_presses == 4  # still within the window
    clock.advance(2.0)
    assert buttons.tick() == 4 and reports == [(4, "patient")]
    for _ in range(14):
        pin.drive_low()
        pin.drive_high()
    clock.advance(3.0)
    assert buttons.tick() == 10  # capped at the top of the scale
    import time

    pin.drive_low()
    time.sleep(0.6)
    pin.drive_high()
    assert reports[-1] == (0, "patient") and buttons.pending_presses == 0
    buttons.close()


def test_self_reports_refit_persist_and_export(tmp_path, factory, capsys):
    cfg = config(tmp_path, smoothing_s=0.0, min_reports=3)
    clock = SteppedClock()
    stage, _, router = stage_for(cfg, clock, factory)
    # This patient rates 2-3 points above the device.
    for score, nrs in ((1.0, 3), (3.0, 6), (5.0, 7), (6.0, 9)):
        hop(stage, clock, score, 1)
        answer = router.handle("self_report", json.dumps({"nrs": nrs, "source": "nurse"}).encode())
        assert answer["ok"], answer
    result = answer["result"]
    assert result["personalised"] is True and result["mapping"]["n_reports"] == 4
    hop(stage, clock, 4.0, 1)
    message = stage.message(stage.latest)
    assert message["personalised"] is True and message["score"] > message["raw_score"] == 4.0
    assert message["mapping"]["intercept"] > 0
    refused = router.handle("self_report", b'{"nrs": 11}')
    assert not refused["ok"] and "nrs" in refused["reason"]
    stage.stop()

    # a restart keeps the mapping
    again, _, _ = stage_for(cfg, SteppedClock(), factory)
    assert again.fusion.mapping is not None and again.fusion.mapping.n_reports == 4
    again.stop()

    toml = tmp_path / "painmon.toml"
    toml.write_text(f'state_dir = "{tmp_path}"\n')
    out = tmp_path / "labels.csv"
    assert cli_main(["export-labels", "--config", str(toml), "--out", str(out), "--format", "csv"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [int(r["nrs"]) for r in rows] == [3, 6, 7, 9]
    assert {r["stay"] for r in rows} == {"t-0001"}
    assert {r["source"] for r in rows} == {"nurse"}
    assert float(rows[1]["fused_score"]) == pytest.approx(3.0)
    assert float(rows[1]["face_au4"]) == pytest.approx(1.5)  # the moment's features came along
    capsys.readouterr()
    assert cli_main(["export-labels", "--config", str(toml)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["features"]["pain"]["raw_score"] == 1.0


def test_report_before_any_estimate_is_kept_but_not_fitted(tmp_path, factory):
    stage, _, router = stage_for(config(tmp_path), SteppedClock(), factory)
    answer = router.handle("self_report", b'{"nrs": 5}')
    assert answer["ok"] and answer["result"]["fused_score"] is None
    assert answer["result"]["personalised"] is False
    assert answer["result"]["reports_until_personalised"] == 3
    stage.stop()


def test_no_pins_configured_means_no_local_output(tmp_path):
    cfg = default_config().model_copy(update={"state_dir": tmp_path})
    stage = PainStage(cfg, SteppedClock(), alarms=AlarmBook(SteppedClock()))
    assert stage.output is None and stage.buttons is None
    stage.stop()
