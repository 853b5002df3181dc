"""The face and physio modalities run live in the pipeline, and their absence stops nothing."""

from __future__ import annotations

from sensors.clock import ScaledClock

from device.app.root import build_monitor
from device.config import default_config


def config_with(**face):
    base = default_config()
    return base.model_copy(update={
        "face": base.face.model_copy(update=face),
        "simulator": base.simulator.model_copy(update={"scenario": "rest"})})


def run(config, seconds, **kw):
    seen: list[tuple[str, dict]] = []
    monitor = build_monitor(config, ScaledClock(1.0), [lambda t, m: seen.append((t, m))], **kw)
    pipeline = monitor.pipeline
    try:
        pipeline.run(seconds)
    finally:
        pipeline.stop()
    return pipeline, seen


def test_face_and_physio_are_published_live(face_model_dir):
    pipeline, seen = run(config_with(model_dir=face_model_dir, fps=5.0), 8.0,
                         face_calibrate_frames=5)
    faces = [m for t, m in seen if t == "face"]
    vitals = [m for t, m in seen if t == "vitals"]
    assert len(faces) >= 6 and len(vitals) == len(faces)
    assert all(m["schema"] == "painmon.face/1" and m["camera"]["state"] == "ok" for m in faces)
    late = faces[-3:]
    for m in late:
        assert m["score"] is not None and 0 <= m["score"] <= 10
        assert {"pspi", "au4", "au43", "negative_affect"} <= set(m["features"])
        assert "uncalibrated" not in m["flags"]  # the first frames became the neutral face
        assert m["features"]["emotion_happy"] > 0.5  # the astronaut smiles
    # Calibrated on her own (smiling) face, the smile no longer reads as pain.
    assert late[-1]["features"]["pspi"] < 4
    assert pipeline.face.frames >= 15
    # Every frame of a hop goes into its estimate (5 fps, 1 s hops): the count is published.
    assert all(m["frames"] == m["features"]["frames"] >= 2 for m in late)
    assert sum(m["frames"] for m in faces) <= pipeline.face.frames
    # No image ever leaves: only numbers are in the message.
    assert all(isinstance(v, (int, float, type(None))) for m in late for v in m["features"].values())
    physio = [m["physio"] for m in vitals]
    assert all(p["state"] == "ok" and p["modality"] == "physio" for p in physio)
    assert any("hr_bpm" in p["features"] for p in physio[2:])


def test_missing_face_models_leave_the_rest_running(tmp_path):
    pipeline, seen = run(config_with(model_dir=tmp_path), 10.0)
    faces = [m for t, m in seen if t == "face"]
    assert faces and all(m["camera"]["state"] == "missing" for m in faces)
    assert "fetch-models" in faces[-1]["camera"]["reason"]
    assert all(m["score"] is None for m in faces)
    vitals = [m for t, m in seen if t == "vitals"]
    assert len(vitals) >= 8 and vitals[-1]["eda_us"] is not None
