import math

import numpy as np
import pytest

from models.face.detection import BlazeFaceDetector
from models.face.landmarks import FaceMesh, roi_from_detection, roi_from_landmarks
from models.runtime import TFLiteModel
from sensors.emulated.photo import similarity_warp

EYES = [33, 133, 159, 145, 263, 362, 386, 374]
NOSE_TIP, UPPER_LIP, LOWER_LIP, CHIN, FOREHEAD = 1, 13, 14, 152, 10


@pytest.fixture(scope="module")
def models(face_model_dir):
    det = BlazeFaceDetector(TFLiteModel(face_model_dir / "face_detection_short_range.tflite"))
    mesh = FaceMesh(TFLiteModel(face_model_dir / "face_landmark.tflite"))
    return det, mesh


def _landmarks(models, image):
    det, mesh = models
    face = det.detect(image)[0]
    roi = roi_from_detection(face)
    return face, mesh.run(*mesh.crop(image, roi), roi)


def test_astronaut_landmarks_in_anatomical_order_inside_the_box(models, astronaut):
    face, result = _landmarks(models, astronaut)
    p = result.points
    assert p.shape == (468, 3)
    assert result.presence > 0.9
    eyes_y = p[EYES, 1].mean()
    assert eyes_y < p[NOSE_TIP, 1] < p[UPPER_LIP, 1] <= p[LOWER_LIP, 1] < p[CHIN, 1]
    assert p[FOREHEAD, 1] < eyes_y
    assert p[33, 0] < p[133, 0] < p[362, 0] < p[263, 0]  # right eye corners, then left
    x0, y0, x1, y1 = face.box
    for i in EYES + [NOSE_TIP, UPPER_LIP, LOWER_LIP]:
        assert x0 <= p[i, 0] <= x1 and y0 <= p[i, 1] <= y1, f"landmark {i} outside the face box"
    # the nose tip is the nearest point to the camera (FaceMesh z: smaller = nearer)
    assert p[NOSE_TIP, 2] < np.median(p[:, 2])


def test_tracking_roi_reproduces_landmarks(models, astronaut):
    _, first = _landmarks(models, astronaut)
    mesh = models[1]
    roi = roi_from_landmarks(first.points)
    second = mesh.run(*mesh.crop(astronaut, roi), roi)
    iod = np.linalg.norm(first.points[263, :2] - first.points[33, :2])
    err = np.linalg.norm(second.points[:, :2] - first.points[:, :2], axis=1)
    assert second.presence > 0.9
    assert np.median(err) < 0.05 * iod


@pytest.mark.parametrize("angle_deg", [-30, 30])
def test_landmarks_follow_a_rotated_face(models, astronaut, angle_deg):
    _, upright = _landmarks(models, astronaut)
    image = similarity_warp(astronaut, (480, 640), 1.6, math.radians(angle_deg),
                            (-(225 - 256) * 1.6, -(128 - 256) * 1.6))
    _, rotated = _landmarks(models, image)
    def eye_angle(p):
        return math.degrees(math.atan2(p[263, 1] - p[33, 1], p[263, 0] - p[33, 0]))
    assert eye_angle(rotated.points) - eye_angle(upright.points) == pytest.approx(angle_deg, abs=5)
    assert rotated.presence > 0.9
