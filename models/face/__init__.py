"""The face path: BlazeFace detection, FaceMesh landmarks, action units and PSPI, emotion, quality.

``FaceEstimator(model_dir).process(frame)`` returns a ``ModalityEstimate`` for fusion. The
model files come from ``painmon fetch-models``; the directory is handed in by device/.
"""

from models.face.action_units import BaselineAccumulator, NeutralBaseline
from models.face.estimator import FaceEstimator, FaceObservation, neutral_from_frames
from models.face.files import FaceModelsUnavailable, verify_model_files

__all__ = [
    "BaselineAccumulator",
    "FaceEstimator",
    "FaceModelsUnavailable",
    "FaceObservation",
    "NeutralBaseline",
    "neutral_from_frames",
    "verify_model_files",
]
