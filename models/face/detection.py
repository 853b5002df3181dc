"""BlazeFace short-range face detection: anchors, box decoding, weighted non-max suppression.

Model: MediaPipe's ``face_detection_short_range.tflite`` (Bazarevsky et al. 2019, "BlazeFace:
Sub-millisecond Neural Face Detection on Mobile GPUs", arXiv:1907.05047). The decoding follows
the options of MediaPipe's ``face_detection_short_range`` graph: SSD anchors for a 128x128 input
on strides 8, 16, 16, 16 with two fixed-size anchors per layer and cell (896 anchors), box and
keypoint offsets scaled by 128, sigmoid scores clipped at +-100, threshold 0.5, then weighted
NMS at IoU 0.3 (the BlazeFace paper's "blending" suppression, steadier across frames).
Keypoints: 0 right eye, 1 left eye, 2 nose tip, 3 mouth centre, 4 right ear, 5 left ear
(the subject's right, which is the image's left in a frontal view).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.face.imaging import apply_transform, letterbox_transform, warp
from models.runtime import TFLiteModel

INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)
ANCHORS_PER_LAYER_CELL = 2
NUM_KEYPOINTS = 6
SCORE_CLIP = 100.0
MIN_SCORE = 0.5
NMS_IOU = 0.3

RIGHT_EYE, LEFT_EYE, NOSE_TIP, MOUTH, RIGHT_EAR, LEFT_EAR = range(6)


@dataclass(frozen=True, slots=True)
class FaceDetection:
    """A detected face in image pixels: box (x_min, y_min, x_max, y_max), (6, 2) keypoints, score."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)


def ssd_anchors(input_size: int = INPUT_SIZE, strides: tuple[int, ...] = STRIDES) -> np.ndarray:
    """(N, 2) anchor centres in 0..1, in the model's output order.

    Layers sharing a stride share a feature map, so their anchors are emitted together per cell
    (MediaPipe SsdAnchorsCalculator); with fixed anchor size only the centres matter.
    """
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 1
        while layer + same < len(strides) and strides[layer + same] == stride:
            same += 1
        cells = int(np.ceil(input_size / stride))
        ys, xs = np.mgrid[0:cells, 0:cells]
        cell_centres = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], axis=1)
        centres.append(np.repeat(cell_centres, same * ANCHORS_PER_LAYER_CELL, axis=0))
        layer += same
    return np.concatenate(centres).astype(np.float32)


_ANCHORS = ssd_anchors()


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, min_score: float = MIN_SCORE):
    """Raw (896, 16) regressors and (896,) logits -> (boxes (K, 4) xyxy, keypoints (K, 6, 2), scores (K,)) in 0..1."""
    raw_boxes = raw_boxes.reshape(-1, 4 + 2 * NUM_KEYPOINTS)
    logits = np.clip(raw_scores.reshape(-1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return np.zeros((0, 4)), np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0)
    raw = raw_boxes[keep] / INPUT_SIZE
    anchors = _ANCHORS[keep]
    centre = raw[:, 0:2] + anchors
    half = raw[:, 2:4] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None, :]
    return boxes, keypoints, scores[keep]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU):
    """Blend each cluster of overlapping candidates by score (BlazeFace's weighted NMS).

    Returns a list of (box, keypoints, score) with the cluster's top score.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), dtype=bool)
    out = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (_iou(boxes[i], boxes) > iou_threshold)
        cluster[i] = True
        w = scores[cluster] / scores[cluster].sum()
        out.append(
            (
                (boxes[cluster] * w[:, None]).sum(axis=0),
                (keypoints[cluster] * w[:, None, None]).sum(axis=0),
                float(scores[i]),
            )
        )
        remaining &= ~cluster
    return out


class BlazeFaceDetector:
    """Runs the short-range detector on a whole RGB frame (letterboxed to 128x128, in [-1, 1])."""

    def __init__(self, model: TFLiteModel, min_score: float = MIN_SCORE) -> None:
        shape = model.input_shape()
        if shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"{model.path.name}: expected a 128x128x3 BlazeFace input, got {shape}")
        self.model = model
        self.min_score = min_score

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces in an H x W x 3 uint8 RGB image, best first, in image pixels."""
        height, width = image.shape[:2]
        to_image = letterbox_transform(height, width, INPUT_SIZE)
        tensor = warp(image, to_image, INPUT_SIZE, INPUT_SIZE)
        tensor *= np.float32(2.0 / 255.0)
        tensor -= np.float32(1.0)
        outputs = self.model.run(tensor[None])
        regressors, logits = _split_outputs(outputs)
        boxes, keypoints, scores = decode(regressors, logits, self.min_score)
        faces = []
        for box, kps, score in weighted_nms(boxes, keypoints, scores):
            corners = apply_transform(to_image, box.reshape(2, 2) * INPUT_SIZE)
            points = apply_transform(to_image, kps * INPUT_SIZE)
            faces.append(FaceDetection(tuple(float(v) for v in corners.ravel()), points, score))
        return faces


def _split_outputs(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    # The output order is not guaranteed across converters; tell them apart by their width.
    by_width = {o.shape[-1]: o for o in outputs}
    if 4 + 2 * NUM_KEYPOINTS not in by_width or 1 not in by_width:
        raise ValueError(f"unexpected BlazeFace outputs: {[o.shape for o in outputs]}")
    return by_width[4 + 2 * NUM_KEYPOINTS], by_width[1]
