"""The recorder: EDF+ segments at native rates, rotation, gaps, the fsynced sidecar, the
record command, and what survives a power cut."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sensors.clock import SteppedClock
from sensors.types import SampleBlock
from tests.conftest import REPO

from device.recording.readers import open_recording
from device.recording.writer import UNIT_RANGES, Recorder, summary

pyedflib = pytest.importorskip("pyedflib", reason="pyedflib (painmon[record]) not installed")

RATES = {"ppg_red": (100.0, "counts"), "ecg": (250.0, "mV"), "eda": (8.0, "uS"),
         "acc_x": (50.0, "g")}


def signal(channel: str, t_s: np.ndarray) -> np.ndarray:
    if channel == "ppg_red":
        return 120_000 + 800 * np.sin(2 * np.pi * 1.2 * t_s)
    if channel == "ecg":
        return 0.8 * np.sin(2 * np.pi * 1.2 * t_s) ** 15
    if channel == "eda":
        return 3.0 + 0.01 * t_s
    return 0.05 * np.sin(2 * np.pi * 0.3 * t_s)


def feed(recorder: Recorder, clock: SteppedClock, seconds: float, *, skip=None,
         t0_ns: int = 0) -> dict[str, np.ndarray]:
    """Blocks of 0.5 s per channel, one batch per 1 s hop; ``skip(channel, t_s)`` drops a block."""
    sent: dict[str, list] = {ch: [] for ch in RATES}
    for hop in range(int(seconds)):
        batch = []
        for k in range(2):
            t_block = hop + 0.5 * k
            for ch, (rate, unit) in RATES.items():
                n = round(rate * 0.5)
                t = t_block + np.arange(n) / rate
                if skip is not None and skip(ch, t_block):
                    continue
                samples = signal(ch, t)
                sent[ch].append((t, samples))
                batch.append(SampleBlock(ch, rate, t0_ns + round(t_block * 1e9), samples, unit))
        clock.advance(1.0)
        recorder.on_blocks(batch)
    return {ch: (np.concatenate([t for t, _ in v]), np.concatenate([s for _, s in v]))
            for ch, v in sent.items()}


def step_of(unit: str) -> float:
    lo, hi = UNIT_RANGES[unit]
    return (hi - lo) / 65535


def test_channels_at_native_rates_round_trip_and_rotate(tmp_path):
    clock = SteppedClock()
    recorder = Recorder(tmp_path, clock, rotate_min=10 / 60, device_id="bed-3", boot_id="b1")
    recorder.start()
    sent = feed(recorder, clock, 25)
    recorder.stop()
    edfs = sorted(tmp_path.glob("*.edf"))
    assert len(edfs) == 3 and len(sorted(tmp_path.glob("*.events.jsonl"))) == 3
    reader = pyedflib.EdfReader(str(edfs[0]))
    try:
        assert sorted(reader.getSignalLabels()) == sorted(RATES)
        for i, label in enumerate(reader.getSignalLabels()):
            assert reader.getSampleFrequency(i) == RATES[label][0]
        assert reader.getFileDuration() == 10
    finally:
        reader.close()
    rec = open_recording(tmp_path)
    for ch, (rate, unit) in RATES.items():
        blocks = rec.blocks[ch]
        assert [b.t0_ns for b in blocks] == [0, 10_000_000_000, 20_000_000_000]
        got = np.concatenate([b.samples for b in blocks])
        assert len(got) == round(25 * rate)
        assert np.max(np.abs(got - sent[ch][1])) <= step_of(unit), ch


def test_gap_is_logged_and_cut_out_again_on_reading(tmp_path):
    clock = SteppedClock()
    recorder = Recorder(tmp_path, clock, rotate_min=1)
    recorder.start()
    sent = feed(recorder, clock, 12, skip=lambda ch, t: ch == "eda" and 4.0 <= t < 6.0)
    recorder.stop()
    assert recorder.gaps == 1
    rec = open_recording(tmp_path)
    gaps = [e["message"] for e in rec.messages("recording") if e["message"]["event"] == "gap"]
    assert gaps == [{"event": "gap", "channel": "eda", "samples": 16, "from_ns": 4_000_000_000}]
    eda = rec.blocks["eda"]
    assert [(b.t0_ns, len(b)) for b in eda] == [(0, 32), (6_000_000_000, 48)]
    assert np.allclose(np.concatenate([b.samples for b in eda]), sent["eda"][1],
                       atol=step_of("uS"))
    assert len(rec.blocks["ppg_red"]) == 1  # the other channels are untouched


def test_events_go_to_the_sidecar_at_once_and_into_the_edf(tmp_path):
    clock = SteppedClock()
    recorder = Recorder(tmp_path, clock, rotate_min=1)
    recorder.start()
    feed(recorder, clock, 3)
    recorder.on_message("vitals", {"hr_bpm": {"ppg": 71.6, "ecg": None}, "eda_us": 3.02})
    recorder.on_message("alarm", {"event": "raised", "kind": "sensor_missing", "source": "ppg"})
    sidecar = next(tmp_path.glob("*.events.jsonl"))
    lines = [json.loads(line) for line in sidecar.read_text().splitlines()]  # before closing
    assert [e["topic"] for e in lines[-2:]] == ["vitals", "alarm"]
    assert lines[-1]["t_ns"] == 3_000_000_000 and lines[-1]["onset_s"] == 3.0
    feed(recorder, clock, 2)
    recorder.stop()
    reader = pyedflib.EdfReader(str(next(tmp_path.glob("*.edf"))))
    try:
        onsets, _, texts = reader.readAnnotations()
    finally:
        reader.close()
    assert "vitals hr 72/- eda 3.02" in texts and "alarm raised sensor_missing ppg" in texts
    # pyedflib reads an onset back up to 0.1 ms off when the start time's sub-second part is
    # under 0.1 s (about one start in ten); the exact time is in the sidecar (t_ns).
    assert onsets[list(texts).index("vitals hr 72/- eda 3.02")] == pytest.approx(3.0, abs=2e-4)
    assert any(t.startswith("painmon t0_ns=") for t in texts)


def test_summary_fits_edf_annotations():
    long = summary("alarm", {"event": "raised", "kind": "x" * 60, "source": "ppg"})
    assert len(long) <= 40
    assert summary("pain", {"score": 5.04, "level": "moderate"}) == "pain 5.0 moderate"


def test_record_command_starts_and_stops(tmp_path):
    from device.app.root import build_monitor
    from device.config import default_config
    from device.recording.writer import attach_recorder

    config = default_config()
    config = config.model_copy(update={
        "face": config.face.model_copy(update={"enabled": False}),
        "recording": config.recording.model_copy(update={"dir": tmp_path / "rec"})})
    clock = SteppedClock()
    monitor = build_monitor(config, clock)
    pipeline = monitor.pipeline
    try:
        recorder = attach_recorder(config, pipeline, monitor.commands, boot_id=monitor.envelope.boot_id,
                                   wall=monitor.wall)
        assert not recorder.active  # [recording] enabled is off
        result = monitor.commands.handle("record", b'{"action": "start"}')
        assert result["ok"] and recorder.active, result
        again = monitor.commands.handle("record", b'{"action": "start"}')
        assert not again["ok"] and "already recording" in again["reason"]
        monitor.commands.handle("self_report", b'{"nrs": 4}')
        assert monitor.commands.handle("record", b'{"action": "stop"}')["ok"]
        assert not monitor.commands.handle("record", b'{"action": "stop"}')["ok"]
        assert not monitor.commands.handle("record", b'{"action": "pause"}')["ok"]
    finally:
        pipeline.stop()
    events = [json.loads(x) for f in (tmp_path / "rec").glob("*.events.jsonl")
              for x in f.read_text().splitlines()]
    assert any(e["topic"] == "self_report" and e["message"]["request"] == {"nrs": 4}
               for e in events), events


POWER_CUT = """
import os, sys
import numpy as np
from device.recording.writer import Recorder
from sensors.clock import SteppedClock
from sensors.types import SampleBlock
clock = SteppedClock()
rec = Recorder(sys.argv[1], clock, rotate_min=10 / 60)
rec.start()
for hop in range(25):
    clock.advance(1.0)
    rec.on_blocks([SampleBlock("ppg_red", 100.0, hop * 10**9, np.full(100, 1000.0 + hop), "counts")])
    rec.on_message("vitals", {"hop": hop})
os._exit(0)  # the power goes: nothing is closed
"""


def test_power_cut_loses_at_most_the_open_files_tail(tmp_path):
    subprocess.run([sys.executable, "-c", POWER_CUT, str(tmp_path)], cwd=REPO, check=True,
                   timeout=60)
    rec = open_recording(tmp_path)
    ppg = np.concatenate([b.samples for b in rec.blocks["ppg_red"]])
    # Two closed files of 10 s and the open one: its records reached the disk as edflib
    # flushed them; at most the stdio buffer's worth (a few records) is lost.
    assert 20 * 100 < len(ppg) <= 25 * 100
    assert np.allclose(ppg[:2000], np.repeat(1000.0 + np.arange(20), 100), atol=4.1)
    hops = [e["message"]["hop"] for e in rec.messages("vitals")]
    assert hops == list(range(25))  # every event: the sidecar is flushed line by line
