"""The face modality: frame -> detection/tracking -> landmarks -> AUs, PSPI, emotion, quality.

Only numbers leave ``process``: the crops live inside one call and are dropped with it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.face import action_units as au
from models.face.detection import BlazeFaceDetector, FaceDetection
from models.face.emotion import EMOTIONS, NEGATIVE_AFFECT, EmotionClassifier, negative_affect
from models.face.files import verify_model_files
from models.face.geometry import FacePose, frontalise
from models.face.imaging import as_rgb_uint8, to_gray
from models.face.landmarks import FaceMesh, MeshResult, roi_from_detection, roi_from_landmarks
from models.face.pain_context import pain_pspi
from models.face.quality import ConfidenceSmoother, FaceQuality, assess
from models.modality import ModalityEstimate
from models.runtime import TFLiteModel
from sensors.types import Frame

MODALITY = "face"
# A track is kept while FaceMesh still sees a face and the points still fit a face shape.
MAX_POSE_RESIDUAL = 0.12
MIN_ROI_PX = 24.0
LOW_QUALITY = 0.3
UNCALIBRATED_TRUST = 0.5


@dataclass(frozen=True)
class FaceObservation:
    """Everything one frame told us, as numbers (no pixels)."""

    t_ns: int
    detection: FaceDetection | None = None
    mesh: MeshResult | None = None
    pose: FacePose | None = None
    measures: dict[str, float] = field(default_factory=dict)
    action_units: dict[str, float] = field(default_factory=dict)
    pspi: float | None = None
    emotions: dict[str, float] = field(default_factory=dict)
    quality: FaceQuality | None = None
    tracked: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def has_face(self) -> bool:
        return self.mesh is not None

    @property
    def landmarks(self) -> np.ndarray | None:
        return None if self.mesh is None else self.mesh.points

    @property
    def emotion(self) -> str | None:
        return max(self.emotions, key=self.emotions.get) if self.emotions else None


class FaceEstimator:
    """``FaceEstimator(model_dir).process(frame) -> ModalityEstimate("face", ...)``.

    Raises ``FaceModelsUnavailable`` when a model file is missing or not the pinned one.
    Until a neutral face is set or calibrated, AUs are measured against the canonical face, the
    estimate is flagged "uncalibrated" with halved confidence, and lowered brows count towards
    the score only as far as another pain action corroborates them (``pain_context``).
    """

    def __init__(
        self,
        model_dir: str | Path,
        num_threads: int = 1,
        tracking: bool = True,
        neutral: au.NeutralBaseline | dict | None = None,
        emotion: bool = True,
        confidence_tau_s: float = 1.0,
        au_scales: dict | None = None,
    ) -> None:
        paths = verify_model_files(model_dir)
        self.detector = BlazeFaceDetector(TFLiteModel(paths["face_detector"], num_threads))
        self.mesh = FaceMesh(TFLiteModel(paths["face_landmarks"], num_threads))
        self.emotion = EmotionClassifier(TFLiteModel(paths["emotion"], num_threads)) if emotion else None
        self.tracking = tracking
        # Refitted AU constants (``tools.refit_face``), else the engineering ones.
        self.au_scales = None if au_scales is None else au.check_scales(au_scales)
        self._smoother = ConfidenceSmoother(confidence_tau_s)
        self._track: MeshResult | None = None
        # Where the face being read was last seen (its centre, as fractions of the frame's width
        # and height): when its track is lost and several faces are in view, the one nearest
        # that place is taken, not the most face-like, so that a visitor or a nurse leaning in
        # is not read against the patient's neutral face.
        self._anchor: tuple[float, float] | None = None
        self._calibration: au.BaselineAccumulator | None = None
        self.neutral = au.NeutralBaseline.canonical()
        self.set_neutral(neutral)

    # -- calibration ----------------------------------------------------------------------
    def set_neutral(self, baseline: au.NeutralBaseline | dict | None) -> None:
        """Use this neutral face (a baseline or its ``to_dict()``); None returns to canonical."""
        if baseline is None:  # another person: no place in the frame is theirs yet
            baseline = au.NeutralBaseline.canonical()
            self._anchor = None
        elif isinstance(baseline, dict):
            baseline = au.NeutralBaseline.from_dict(baseline)
        self.neutral = baseline
        self._calibration = None

    def start_calibration(self, frames: int = 30) -> None:
        """Take the next ``frames`` faces as the neutral face (the person at rest, eyes open)."""
        self._calibration = au.BaselineAccumulator(frames)

    @property
    def calibrating(self) -> bool:
        return self._calibration is not None

    @property
    def calibrated(self) -> bool:
        return self.neutral.source != "canonical"

    def reset(self) -> None:
        self._track = None
        self._smoother.reset()

    # -- per frame ------------------------------------------------------------------------
    def observe(self, frame: Frame | np.ndarray, t_ns: int | None = None) -> FaceObservation:
        if isinstance(frame, Frame):
            image, t_ns = frame.image, frame.t_ns
        else:
            image, t_ns = frame, (0 if t_ns is None else t_ns)
        image = as_rgb_uint8(image)
        timings = {"detect": 0.0, "landmarks": 0.0, "action_units": 0.0, "emotion": 0.0, "quality": 0.0}
        t0 = time.perf_counter()
        detection, mesh, crop, fit, tracked = None, None, None, None, False

        if self.tracking and self._track is not None:
            roi = roi_from_landmarks(self._track.points)
            crop, transform = self.mesh.crop(image, roi)
            mesh = self.mesh.run(crop, transform, roi)
            t1 = time.perf_counter()
            timings["landmarks"] += (t1 - t0) * 1e3
            fit = self._accept(mesh)
            tracked = fit is not None
            timings["action_units"] += (time.perf_counter() - t1) * 1e3
            t0 = time.perf_counter()
        if not tracked:
            mesh = None
            faces = self.detector.detect(image)
            t1 = time.perf_counter()
            timings["detect"] = (t1 - t0) * 1e3
            if faces:
                detection = self._nearest_to_anchor(faces, image.shape)
                roi = roi_from_detection(detection)
                crop, transform = self.mesh.crop(image, roi)
                mesh = self.mesh.run(crop, transform, roi)
                t2 = time.perf_counter()
                timings["landmarks"] += (t2 - t1) * 1e3
                fit = self._accept(mesh)
                if fit is None:
                    mesh = None
                timings["action_units"] += (time.perf_counter() - t2) * 1e3
        self._track = mesh if self.tracking else None
        if mesh is not None and self.tracking:
            self._anchor = _place(mesh.points, image.shape)
        if mesh is None:
            return FaceObservation(t_ns, detection=detection, timings_ms=timings)

        t0 = time.perf_counter()
        frontal, pose = fit
        measures = au.measure(frontal)
        if self._calibration is not None:
            baseline = self._calibration.add(measures)
            if baseline is not None:
                self.set_neutral(baseline)
        aus = au.action_units(measures, self.neutral, self.au_scales)
        t1 = time.perf_counter()
        timings["action_units"] += (t1 - t0) * 1e3

        emotions: dict[str, float] = {}
        face_rect = roi_from_landmarks(mesh.points, scale=1.0)
        if self.emotion is not None:
            emotions = self.emotion.classify(self.emotion.crop(image, face_rect))
        t2 = time.perf_counter()
        timings["emotion"] = (t2 - t1) * 1e3

        eye_centres = mesh.points[list(au.EYE_CORNERS[0]), :2].mean(0), mesh.points[list(au.EYE_CORNERS[1]), :2].mean(0)
        iod_px = float(np.linalg.norm(eye_centres[1] - eye_centres[0]))
        quality = assess(iod_px, pose, to_gray(crop), mesh.presence)
        timings["quality"] = (time.perf_counter() - t2) * 1e3
        return FaceObservation(
            t_ns, detection, mesh, pose, measures, aus, au.pspi(aus), emotions, quality, tracked, timings
        )

    def _nearest_to_anchor(self, faces: list[FaceDetection], shape) -> FaceDetection:
        """The detection nearest where the face being read was last seen; the best-scored one
        when there is no such place (a new stream, a new person) or only one face."""
        if self._anchor is None or len(faces) == 1:
            return faces[0]
        height, width = shape[:2]
        ax, ay = self._anchor
        return min(faces, key=lambda f: np.hypot(f.center[0] / width - ax, f.center[1] / height - ay))

    def _accept(self, mesh: MeshResult) -> tuple[np.ndarray, FacePose] | None:
        """Frontalised points and pose if the landmarks are a face we can follow, else None."""
        if mesh.presence < 0.5 or mesh.roi.size < MIN_ROI_PX or not np.all(np.isfinite(mesh.points)):
            return None
        frontal, pose = frontalise(mesh.points)
        return (frontal, pose) if pose.residual <= MAX_POSE_RESIDUAL else None

    def process(self, frame: Frame | np.ndarray, t_ns: int | None = None) -> ModalityEstimate:
        obs = self.observe(frame, t_ns)
        self.last_observation_timings_ms = obs.timings_ms
        return self.estimate(obs)

    def estimate(self, obs: FaceObservation) -> ModalityEstimate:
        flags = []
        if self.calibrating:
            flags.append("calibrating")
        if not self.calibrated:
            flags.append("uncalibrated")
        if not obs.has_face:
            confidence = self._smoother.update(0.0, obs.t_ns)
            return ModalityEstimate(MODALITY, None, _unit(confidence), 0.0, {}, tuple(["no_face", *flags]))
        quality = obs.quality.overall
        trust = quality * obs.quality.presence * (1.0 if self.calibrated else UNCALIBRATED_TRUST)
        confidence = self._smoother.update(trust, obs.t_ns)
        if quality < LOW_QUALITY:
            flags.append("low_quality")
        if obs.action_units["au43"] >= 1.0:
            flags.append("eyes_closed")
        # The score reads the actions a smile, speech or a yawn do not explain; plain PSPI beside.
        pain = pain_pspi(obs.action_units, calibrated=self.calibrated)
        features = {"pspi": obs.pspi, "pain_pspi": pain}
        features.update({k: float(v) for k, v in obs.action_units.items()})
        for name in EMOTIONS:
            if name in obs.emotions:
                features[f"emotion_{name}"] = obs.emotions[name]
        if obs.emotions:
            features["negative_affect"] = negative_affect(obs.emotions)
        features.update(obs.quality.features())
        features.update({"yaw_deg": obs.pose.yaw_deg, "pitch_deg": obs.pose.pitch_deg, "roll_deg": obs.pose.roll_deg})
        return ModalityEstimate(
            MODALITY, au.pspi_to_score(pain), _unit(confidence), _unit(quality), features, tuple(flags)
        )


def _unit(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _place(points: np.ndarray, shape) -> tuple[float, float]:
    """A face's centre (its landmarks' bounding box) as fractions of the frame."""
    height, width = shape[:2]
    (x0, y0), (x1, y1) = points[:, :2].min(0), points[:, :2].max(0)
    return float((x0 + x1) / 2 / width), float((y0 + y1) / 2 / height)


def neutral_from_frames(estimator: FaceEstimator, frames: Iterable[Frame | np.ndarray]) -> au.NeutralBaseline:
    """The median neutral face over frames of the person at rest; raises if none has a face."""
    samples = [obs.measures for obs in (estimator.observe(f) for f in frames) if obs.has_face]
    if not samples:
        raise ValueError("no face found in the calibration frames")
    return au.NeutralBaseline.from_measures(samples)


__all__ = ["FaceEstimator", "FaceObservation", "neutral_from_frames", "NEGATIVE_AFFECT"]
