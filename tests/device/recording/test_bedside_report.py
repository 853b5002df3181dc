"""The bedside on a session report: a stay, a scale score and a dose with the estimate before
and after it, read back from a real recording."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sensors.clock import SteppedClock
from sensors.types import SampleBlock

from device.recording.bedside_events import dose_effects, stay_span_s, stays_in
from device.recording.readers import open_recording
from device.recording.report import render_report
from device.recording.writer import Recorder

pytest.importorskip("pyedflib", reason="pyedflib (painmon[record]) not installed")
pytest.importorskip("matplotlib", reason="matplotlib (painmon[report]) not installed")


def score_at(hop: int) -> float:
    """6 until the dose at 40 s, falling to 2 by 70 s."""
    return 6.0 if hop < 40 else max(2.0, 6.0 - (hop - 40) * 4 / 30)


def make_session(folder) -> None:
    clock = SteppedClock()
    rec = Recorder(folder, clock, rotate_min=1.0)
    rec.start()
    for hop in range(100):
        clock.advance(1.0)
        rec.on_blocks([SampleBlock("eda", 8.0, hop * 10**9, np.full(8, 3.0), "uS")])
        stay = "enc-42" if 5 <= hop < 95 else None
        rec.on_message("pain", {"score": score_at(hop), "level": "moderate", "stay": stay})
        if hop == 5:
            rec.on_command("admit", b'{"reference": "enc-42"}',
                           {"ok": True, "result": {"reference": "enc-42", "discharged_t": None}})
        if hop == 40:
            rec.on_command("analgesia", b'{"route": "iv", "drug_class": "opioid"}',
                           {"ok": True, "result": {"dose_id": 1, "route": "iv",
                                                   "drug_class": "opioid",
                                                   "reassess_after_min": 0.5}})
        if hop == 80:
            rec.on_message("scale", {"scale": "painad", "score_0_10": 2.0, "stay": "enc-42"})
            rec.on_command("painad", json.dumps({"breathing": 0}).encode(),
                           {"ok": True, "result": {"reassessed": [{"dose_id": 1}]}})
        if hop == 95:
            rec.on_command("discharge", b'{"reference": "enc-42"}',
                           {"ok": True, "result": {"discharged_t": "2026-01-01T00:00:00Z"}})
    rec.stop()


def test_doses_stays_and_scales_on_the_report(tmp_path):
    make_session(tmp_path / "rec")
    recording = open_recording(tmp_path / "rec")
    assert stays_in(recording) == ["enc-42"]
    start_s, end_s = stay_span_s(recording, "enc-42")
    assert 4.0 <= start_s <= 7.0 and 93.0 <= end_s <= 96.0
    pain = recording.messages("pain")
    t = np.asarray([(e["t_ns"] - recording.start_ns) / 1e9 for e in pain])
    y = np.asarray([e["message"]["score"] for e in pain])
    (dose,) = dose_effects(recording, t, y)
    # the window is a third of the 30 s interval: 10 s before the dose, 10 s before the PAINAD
    assert dose["window_s"] == 10.0 and dose["reassessed"]
    assert dose["before"] == pytest.approx(6.0)
    assert dose["after"] == pytest.approx(2.0)
    assert dose["after_at_s"] - dose["t_s"] == pytest.approx(40.0, abs=1.5)
    png = render_report(tmp_path / "rec", tmp_path / "stay.png", stay="enc-42")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no estimate of stay 'enc-1'"):
        render_report(tmp_path / "rec", tmp_path / "none.png", stay="enc-1")
