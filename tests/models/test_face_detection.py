import math

import numpy as np
import pytest
from skimage import data

from models.face.detection import (
    LEFT_EYE,
    MOUTH,
    NOSE_TIP,
    RIGHT_EYE,
    BlazeFaceDetector,
    ssd_anchors,
    weighted_nms,
)
from models.runtime import TFLiteModel
from sensors.emulated.photo import similarity_warp


@pytest.fixture(scope="module")
def detector(face_model_dir):
    return BlazeFaceDetector(TFLiteModel(face_model_dir / "face_detection_short_range.tflite"))


def test_anchor_layout_matches_blazeface_short_range():
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    # stride 8: a 16x16 grid, 2 anchors per cell; then stride 16: 8x8 cells, 6 anchors each
    assert np.allclose(anchors[0], [0.5 / 16, 0.5 / 16]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(anchors[512:518], [0.5 / 8, 0.5 / 8])
    assert np.allclose(anchors[518], [1.5 / 8, 0.5 / 8])
    assert anchors.min() > 0 and anchors.max() < 1


def test_weighted_nms_blends_overlaps_and_keeps_separate_faces():
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8]])
    kps = np.zeros((3, 6, 2))
    scores = np.array([0.9, 0.6, 0.7])
    out = weighted_nms(boxes, kps, scores)
    assert len(out) == 2
    blended, _, score = out[0]
    assert score == pytest.approx(0.9)
    assert blended[0] == pytest.approx((0.1 * 0.9 + 0.12 * 0.6) / 1.5)
    assert np.allclose(out[1][0], boxes[2])


def _check_face(face, image_shape):
    k = face.keypoints
    x0, y0, x1, y1 = face.box
    assert 0 <= x0 < x1 <= image_shape[1] and 0 <= y0 < y1 <= image_shape[0]
    for point in (k[RIGHT_EYE], k[LEFT_EYE], k[NOSE_TIP], k[MOUTH]):
        assert x0 <= point[0] <= x1 and y0 <= point[1] <= y1


def test_astronaut_face_box_and_keypoints(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.8
    # her face is in the upper middle of the 512x512 portrait
    cx, cy = face.center
    assert 180 < cx < 280 and 80 < cy < 180
    _check_face(face, astronaut.shape)
    k = face.keypoints
    assert k[RIGHT_EYE, 0] < k[LEFT_EYE, 0]  # the subject's right eye is on the image left
    eyes_y = (k[RIGHT_EYE, 1] + k[LEFT_EYE, 1]) / 2
    assert eyes_y < k[NOSE_TIP, 1] < k[MOUTH, 1]


def test_cameraman_face_found(detector):
    image = np.repeat(data.camera()[:, :, None], 3, axis=2)
    faces = detector.detect(image)
    assert len(faces) >= 1
    _check_face(faces[0], image.shape)


def _expected_centre(center, photo_shape, out_hw, scale, angle, shift):
    h, w = photo_shape[:2]
    dx, dy = (center[0] - w / 2) * scale, (center[1] - h / 2) * scale
    c, s = math.cos(angle), math.sin(angle)
    return (c * dx - s * dy + out_hw[1] / 2 + shift[0], s * dx + c * dy + out_hw[0] / 2 + shift[1])


# Bedside framing: the face about 150 px wide in 640x480 (the photo at 1.6x, face centred).
# BlazeFace short-range wants faces over ~12 % of the frame width (its smallest anchor scale is
# 0.148 of the input), so 0.5x of this framing (74 px) is about its lower limit.
BASE_SCALE = 1.6


@pytest.mark.parametrize(
    "relative_scale,angle_deg",
    [(1.0, -30), (1.0, 30), (1.0, -15), (1.0, 15), (0.5, 0), (1.0, 0), (2.0, 0)],
)
def test_detection_survives_rotation_and_scale(detector, astronaut, relative_scale, angle_deg):
    reference = detector.detect(astronaut)[0]
    out_hw = (480, 640)
    scale = BASE_SCALE * relative_scale
    shift = (-(reference.center[0] - 256) * scale, -(reference.center[1] - 256) * scale)
    angle = math.radians(angle_deg)
    image = similarity_warp(astronaut, out_hw, scale, angle, shift)
    faces = detector.detect(image)
    assert faces, f"no face at {relative_scale}x, rotation {angle_deg} deg"
    expected = _expected_centre(reference.center, astronaut.shape, out_hw, scale, angle, shift)
    assert math.dist(faces[0].center, expected) < 0.25 * reference.width * scale
    assert faces[0].width == pytest.approx(reference.width * scale, rel=0.35)
    k, ref_k = faces[0].keypoints, reference.keypoints
    eye_angle = math.degrees(math.atan2(k[LEFT_EYE, 1] - k[RIGHT_EYE, 1], k[LEFT_EYE, 0] - k[RIGHT_EYE, 0]))
    ref_angle = math.degrees(math.atan2(ref_k[LEFT_EYE, 1] - ref_k[RIGHT_EYE, 1],
                                        ref_k[LEFT_EYE, 0] - ref_k[RIGHT_EYE, 0]))
    if angle_deg:
        # BlazeFace eye keypoints are coarse when tilted; they still turn the right way,
        # which is all the upright crop for FaceMesh needs (FaceMesh refines the angle).
        assert (eye_angle - ref_angle) * angle_deg > 0


@pytest.mark.parametrize("gain,gamma", [(0.35, 1.0), (1.0, 2.2), (1.0, 0.45), (1.6, 1.0)])
def test_detection_survives_exposure(detector, astronaut, gain, gamma):
    image = np.clip(255.0 * (astronaut / 255.0) ** gamma * gain, 0, 255).astype(np.uint8)
    faces = detector.detect(image)
    assert faces and faces[0].score > 0.6
    _check_face(faces[0], image.shape)


def test_blank_and_noise_frames_have_no_confident_face(detector):
    rng = np.random.default_rng(1)
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert detector.detect(np.full((480, 640, 3), 255, np.uint8)) == []
    # Noise can graze the 0.5 score threshold; FaceMesh's presence check rejects such boxes
    # (tests/models/test_face_estimator.py), but nothing on noise should look like a face.
    assert all(f.score < 0.7 for f in detector.detect(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)))
