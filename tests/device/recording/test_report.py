"""painmon report: a recorded session drawn, with its events, as PNG or PDF."""

from __future__ import annotations

import numpy as np
import pytest

from sensors.clock import SteppedClock
from sensors.types import SampleBlock

from device.recording.report import _get, envelope, render_report, scored
from device.recording.writer import Recorder

pytest.importorskip("pyedflib", reason="pyedflib (painmon[record]) not installed")
pytest.importorskip("matplotlib", reason="matplotlib (painmon[report]) not installed")


def make_session(folder) -> None:
    clock = SteppedClock()
    rec = Recorder(folder, clock, rotate_min=0.25)
    rec.start()
    for hop in range(40):
        t = hop + np.arange(100) / 100
        clock.advance(1.0)
        rec.on_blocks([SampleBlock("ppg_red", 100.0, hop * 10**9, 1e5 + 500 * np.sin(7 * t), "counts"),
                       SampleBlock("eda", 8.0, hop * 10**9, np.full(8, 3.0 + hop / 40), "uS")])
        rec.on_message("vitals", {"hr_bpm": {"ppg": 70 + hop / 4, "ecg": None}, "eda_us": 3 + hop / 40,
                                  "physio": {"score": 2.0}})
        rec.on_message("pain", {"score": min(9.0, hop / 4), "level": "mild"})
        if hop == 10:
            rec.on_message("alarm", {"event": "raised", "alarm_id": "a1", "kind": "pain_high",
                                     "source": "fusion", "priority": "medium"})
        if hop == 20:
            rec.on_message("alarm", {"event": "cleared", "alarm_id": "a1"})
            rec.on_command("self_report", b'{"nrs": 6}', {"ok": True, "result": {}})
            rec.on_command("calibrate", b'{}', {"ok": True, "result": {}})
    rec.stop()


def test_report_renders_png_and_pdf(tmp_path):
    make_session(tmp_path / "rec")
    png = render_report(tmp_path / "rec", tmp_path / "out" / "s.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000
    pdf = render_report(tmp_path / "rec", tmp_path / "s.pdf")
    assert pdf.read_bytes()[:4] == b"%PDF"


def test_report_refuses_what_it_cannot_draw(tmp_path):
    make_session(tmp_path / "rec")
    with pytest.raises(ValueError, match="png or .pdf"):
        render_report(tmp_path / "rec", tmp_path / "s.jpg")
    with pytest.raises(ValueError, match="does not exist"):
        render_report(tmp_path / "none", tmp_path / "s.png")


def test_envelope_keeps_extremes_of_every_bin():
    y = np.zeros(10_001)
    y[7777] = 5.0
    y[9999] = -3.0
    t, lo, hi = envelope(np.arange(len(y)) / 100.0, y, columns=100)
    assert len(t) == len(lo) == len(hi) <= 100
    assert hi.max() == 5.0 and lo.min() == -3.0


def test_scores_taken_while_calibrating_are_not_drawn():
    pick = scored(_get("score"))
    assert pick({"score": 6.25, "flags": ["calibrating", "uncalibrated"]}) is None
    assert pick({"score": 2.0, "flags": ["uncalibrated"]}) == 2.0
    assert pick({"score": 0.0}) == 0.0
