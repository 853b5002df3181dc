"""FaceMesh: 468 3-D landmarks on an upright 192x192 crop, and the region of interest to track.

Model: MediaPipe's ``face_landmark.tflite`` (Kartynnik et al. 2019, "Real-time Facial Surface
Geometry from Monocular Video on Mobile GPUs", arXiv:1907.06724): input RGB in [0, 1], outputs
468 x (x, y, z) in crop pixels (z in roughly the same scale as x, smaller = nearer the camera)
and a face-presence logit. The region of interest follows MediaPipe's face_landmark_front
graph: from a detection, the box enlarged 1.5x and rotated so the eye keypoints are level;
from the previous frame's landmarks, their extent in the face-aligned frame enlarged 1.5x and
rotated by the eye corners (landmarks 33 and 263), so the detector runs only when tracking is
lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.face.detection import LEFT_EYE, RIGHT_EYE, FaceDetection
from models.face.imaging import RotatedRect, warp
from models.runtime import TFLiteModel

INPUT_SIZE = 192
NUM_LANDMARKS = 468
ROI_SCALE = 1.5
PRESENCE_THRESHOLD = 0.5

# Eye outer corners: the subject's right (image left) and left.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263


@dataclass(frozen=True, slots=True)
class MeshResult:
    """Landmarks in image pixels (468, 3) (z scaled like x), presence 0..1, and the ROI used."""

    points: np.ndarray
    presence: float
    roi: RotatedRect


def _eye_angle(right: np.ndarray, left: np.ndarray) -> float:
    d = left - right
    return float(np.arctan2(d[1], d[0]))


def roi_from_detection(detection: FaceDetection, scale: float = ROI_SCALE) -> RotatedRect:
    angle = _eye_angle(detection.keypoints[RIGHT_EYE], detection.keypoints[LEFT_EYE])
    cx, cy = detection.center
    side = max(detection.width, detection.height)
    return RotatedRect(cx, cy, side * scale, angle)


def roi_from_landmarks(points: np.ndarray, scale: float = ROI_SCALE) -> RotatedRect:
    """The square around the landmarks in the face-aligned frame, enlarged ``scale`` times."""
    xy = points[:, :2]
    angle = _eye_angle(xy[RIGHT_EYE_OUTER], xy[LEFT_EYE_OUTER])
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # image -> face-aligned
    aligned = xy @ rot.T
    lo, hi = aligned.min(axis=0), aligned.max(axis=0)
    centre = rot.T @ ((lo + hi) / 2.0)
    side = float(max(hi - lo))
    return RotatedRect(float(centre[0]), float(centre[1]), side * scale, angle)


class FaceMesh:
    """Runs the landmark model on the upright crop of a ROI."""

    def __init__(self, model: TFLiteModel) -> None:
        shape = model.input_shape()
        if shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"{model.path.name}: expected a 192x192x3 FaceMesh input, got {shape}")
        self.model = model

    def crop(self, image: np.ndarray, roi: RotatedRect) -> tuple[np.ndarray, np.ndarray]:
        """(192, 192, 3) float32 crop in 0..255 and its crop->image transform."""
        transform = roi.crop_transform(INPUT_SIZE)
        return warp(image, transform, INPUT_SIZE, INPUT_SIZE), transform

    def run(self, crop: np.ndarray, transform: np.ndarray, roi: RotatedRect) -> MeshResult:
        """Landmarks for a crop made by ``crop`` (values 0..255)."""
        tensor = crop * np.float32(1.0 / 255.0)
        outputs = self.model.run(tensor[None])
        coords, logit = _split_outputs(outputs)
        local = coords.reshape(NUM_LANDMARKS, 3).astype(np.float64)
        points = np.empty_like(local)
        points[:, :2] = local[:, :2] @ transform[:, :2].T + transform[:, 2]
        # z is in crop pixels; the crop's scale is the same on every axis.
        points[:, 2] = local[:, 2] * (roi.size / INPUT_SIZE)
        presence = float(1.0 / (1.0 + np.exp(-np.clip(float(logit.ravel()[0]), -60.0, 60.0))))
        return MeshResult(points, presence, roi)


def _split_outputs(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    coords = [o for o in outputs if o.size == NUM_LANDMARKS * 3]
    scores = [o for o in outputs if o.size == 1]
    if len(coords) != 1 or len(scores) != 1:
        raise ValueError(f"unexpected FaceMesh outputs: {[o.shape for o in outputs]}")
    return coords[0], scores[0]
