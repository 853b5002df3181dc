import json
import shutil

import numpy as np
import pytest

from models.face import FaceEstimator, FaceModelsUnavailable, NeutralBaseline, neutral_from_frames
from sensors.clock import SteppedClock
from sensors.emulated.photo import PhotoSource
from sensors.types import Frame


@pytest.fixture(scope="module")
def estimator(face_model_dir):
    return FaceEstimator(face_model_dir)


def test_astronaut_estimate(face_model_dir, astronaut):
    est = FaceEstimator(face_model_dir)
    obs = est.observe(Frame(0, astronaut))
    assert obs.has_face and obs.emotion == "happy"
    e = est.estimate(obs)
    assert e.modality == "face"
    # The score reads PSPI without what the smile explains: the astronaut smiles, brows level.
    assert e.score == pytest.approx(e.features["pain_pspi"] * 10 / 16)
    assert e.features["pain_pspi"] < 0.8 < obs.pspi
    assert "uncalibrated" in e.flags and "no_face" not in e.flags
    for key in ("pspi", "pain_pspi", "au4", "au6", "au7", "au9", "au10", "au12", "au20", "au25",
                "au26", "au43", "emotion_angry",
                "emotion_disgust", "emotion_fear", "emotion_sad", "negative_affect", "quality_size",
                "quality_pose", "quality_sharpness", "quality_exposure", "presence", "yaw_deg"):
        assert key in e.features, key
    assert e.features["emotion_happy"] > 0.5 > e.features["negative_affect"]
    # a smile is AU6 (cheek raiser) with AU12: the known PSPI confound, measured and published
    assert e.features["au6"] > 1 and e.features["au12"] > 2
    assert e.quality > 0.8
    payload = json.loads(json.dumps(e.to_dict()))
    assert all(isinstance(v, (float, type(None))) for v in payload["features"].values())


@pytest.mark.parametrize("kind", ["black", "white", "noise", "gray_small"])
def test_frames_without_a_face(estimator, kind):
    rng = np.random.default_rng(3)
    image = {
        "black": np.zeros((480, 640, 3), np.uint8),
        "white": np.full((480, 640, 3), 255, np.uint8),
        "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "gray_small": rng.integers(0, 256, (48, 64), dtype=np.uint8),
    }[kind]
    estimator.reset()
    e = estimator.process(Frame(1, image))
    assert "no_face" in e.flags
    assert e.score is None and e.quality == 0.0


def test_tracking_skips_the_detector(face_model_dir):
    source = PhotoSource(clock=SteppedClock())
    est = FaceEstimator(face_model_dir, tracking=True)
    observations = [est.observe(source.read()) for _ in range(5)]
    assert all(o.has_face for o in observations)
    assert not observations[0].tracked and all(o.tracked for o in observations[1:])
    assert all(o.timings_ms["detect"] == 0.0 for o in observations[1:])
    untracked = FaceEstimator(face_model_dir, tracking=False)
    assert not any(untracked.observe(source.read()).tracked for _ in range(2))


def test_confidence_is_smoothed_over_time(face_model_dir, astronaut):
    est = FaceEstimator(face_model_dir, confidence_tau_s=1.0)
    blank = np.zeros_like(astronaut)
    assert est.process(Frame(0, blank)).confidence == 0.0
    values = [est.process(Frame(int(k * 1e8), astronaut)).confidence for k in range(1, 31)]
    assert 0 < values[0] < values[-1]  # rises gradually, not in one jump
    assert all(b >= a - 1e-9 for a, b in zip(values, values[1:]))
    after_loss = est.process(Frame(int(31 * 1e8), blank)).confidence
    assert 0 < after_loss < values[-1]


def test_calibration_sets_the_neutral_face(face_model_dir):
    source = PhotoSource(clock=SteppedClock())
    est = FaceEstimator(face_model_dir)
    est.start_calibration(frames=4)
    flags = [est.process(source.read()).flags for _ in range(4)]
    assert "calibrating" in flags[0] and est.calibrated and not est.calibrating
    e = est.process(source.read())
    assert "uncalibrated" not in e.flags
    assert e.features["pspi"] < 2.0  # her own smile is now her baseline
    restored = FaceEstimator(face_model_dir, neutral=est.neutral.to_dict())
    assert restored.neutral == est.neutral


def test_neutral_from_frames(face_model_dir, astronaut):
    est = FaceEstimator(face_model_dir, tracking=False)
    base = neutral_from_frames(est, [astronaut, astronaut[:, ::-1].copy()])
    assert isinstance(base, NeutralBaseline) and base.frames == 2
    with pytest.raises(ValueError, match="no face"):
        neutral_from_frames(est, [np.zeros((64, 64, 3), np.uint8)])


def test_missing_model_is_reported(tmp_path, face_model_dir):
    for name in ("face_detection_short_range.tflite", "emotion_model_quantized.tflite"):
        shutil.copy(face_model_dir / name, tmp_path / name)
    with pytest.raises(FaceModelsUnavailable) as err:
        FaceEstimator(tmp_path)
    assert "face_landmark.tflite" in str(err.value) and "missing" in str(err.value)
    assert "painmon fetch-models" in str(err.value)


def test_corrupt_model_is_reported(tmp_path, face_model_dir):
    for path in face_model_dir.glob("*.tflite"):
        shutil.copy(path, tmp_path / path.name)
    target = tmp_path / "emotion_model_quantized.tflite"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(FaceModelsUnavailable) as err:
        FaceEstimator(tmp_path)
    message = str(err.value)
    assert "emotion_model_quantized.tflite" in message and "sha256" in message
    assert "painmon fetch-models" in message


def test_modality_estimate_refuses_out_of_range_values():
    from models.modality import ModalityEstimate

    with pytest.raises(ValueError, match="score"):
        ModalityEstimate("face", 11.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="confidence"):
        ModalityEstimate("face", 1.0, 1.5, 0.5)
    with pytest.raises(ValueError, match="crop"):
        ModalityEstimate("face", 1.0, 0.5, 0.5, {"crop": np.zeros((2, 2))})
    ok = ModalityEstimate("face", None, 0.0, 0.0, {"x": float("nan")}, ("no_face",))
    assert ok.to_dict() == {"modality": "face", "score": None, "confidence": 0.0, "quality": 0.0,
                            "features": {"x": None}, "flags": ["no_face"]}


def two_faces(astronaut):
    """A frame with the astronaut on the left (the patient), and the frame with a second,
    larger and more face-like face on the right (a visitor: the astronaut mirrored), which the
    detector ranks first."""
    from PIL import Image

    head = astronaut[0:300, 100:380]

    def place(canvas, image, x, y, scale):
        size = (int(image.shape[1] * scale), int(image.shape[0] * scale))
        image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
        canvas[y:y + image.shape[0], x:x + image.shape[1]] = image
        return canvas

    alone = place(np.full((420, 760, 3), 90, np.uint8), head, 10, 50, 1.0)
    return alone, place(alone.copy(), np.ascontiguousarray(head[:, ::-1]), 380, 20, 1.1)


def test_a_lost_track_is_picked_up_on_the_face_it_was_reading_not_the_most_face_like(
        face_model_dir, astronaut):
    alone, with_visitor = two_faces(astronaut)
    est = FaceEstimator(face_model_dir, tracking=True)
    ranked = est.detector.detect(with_visitor)
    assert len(ranked) == 2 and ranked[0].center[0] > 380 > ranked[1].center[0]  # visitor first
    blank = np.full_like(alone, 90)

    def centre_x(obs) -> float:
        return float(obs.landmarks[:, 0].mean())

    assert centre_x(est.observe(alone, 0)) < 380
    assert not est.observe(blank, 1).has_face  # the patient's track is lost
    assert centre_x(est.observe(with_visitor, 2)) < 380  # picked up on the patient again
    assert centre_x(est.observe(with_visitor, 3)) < 380  # and tracked there
    # A new person (the neutral face set back): no place is theirs yet, the best face is taken.
    est.observe(blank, 4)
    est.set_neutral(None)
    assert centre_x(est.observe(with_visitor, 5)) > 380
    # Without tracking (single photos) every frame stands alone: the best face.
    still = FaceEstimator(face_model_dir, tracking=False)
    still.observe(alone, 0)
    assert centre_x(still.observe(with_visitor, 1)) > 380
