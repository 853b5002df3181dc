"""How far to trust a face reading: size, head pose, sharpness, exposure, presence; smoothed.

Each part maps to 0..1 and the quality is their product, so any one bad part is enough to
distrust the frame. The thresholds follow what the models were built for: FaceMesh is trained
on faces that fill the crop and degrades past about 40 degrees of yaw; AU geometry loses
precision when the eyes are fewer than ~20 px apart (landmark error of ~1 px is then 5 % of the
IOD, larger than the AU dead zones). Sharpness is the variance of the Laplacian (Pech-Pacheco
et al. 2000) over the central face area of the landmark crop; exposure is the mean luma of that
area and the share of clipped pixels (ISO 19794-5 face-image quality names both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.face.geometry import FacePose
from models.face.imaging import laplacian_variance

IOD_PX_MIN, IOD_PX_FULL = 12.0, 28.0
YAW_DEG_FREE, YAW_DEG_MAX = 20.0, 50.0
PITCH_DEG_FREE, PITCH_DEG_MAX = 20.0, 45.0
SHARPNESS_VAR_MIN, SHARPNESS_VAR_FULL = 8.0, 80.0
LUMA_LOW, LUMA_OK_LOW, LUMA_OK_HIGH, LUMA_HIGH = 20.0, 70.0, 190.0, 240.0
CLIPPED_MAX = 0.3


@dataclass(frozen=True, slots=True)
class FaceQuality:
    size: float
    pose: float
    sharpness: float
    exposure: float
    presence: float
    iod_px: float
    laplacian_var: float
    luma_mean: float

    @property
    def overall(self) -> float:
        return self.size * self.pose * self.sharpness * self.exposure

    def features(self) -> dict[str, float]:
        return {
            "quality_size": self.size,
            "quality_pose": self.pose,
            "quality_sharpness": self.sharpness,
            "quality_exposure": self.exposure,
            "presence": self.presence,
            "face_iod_px": self.iod_px,
            "laplacian_var": self.laplacian_var,
            "luma_mean": self.luma_mean,
        }


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def _angle_score(angle_deg: float, free: float, limit: float) -> float:
    return 1.0 - _ramp(abs(angle_deg), free, limit)


def assess(iod_px: float, pose: FacePose, crop_gray: np.ndarray, presence: float) -> FaceQuality:
    """Quality of one face: ``crop_gray`` is the upright landmark crop (0..255)."""
    h, w = crop_gray.shape
    centre = crop_gray[h // 4 : h - h // 4, w // 4 : w - w // 4]
    lap_var = laplacian_variance(centre)
    luma = float(centre.mean())
    clipped = float(np.mean((centre < 5) | (centre > 250)))
    sharpness = _ramp(math.log10(max(lap_var, 1e-6)), math.log10(SHARPNESS_VAR_MIN), math.log10(SHARPNESS_VAR_FULL))
    exposure = min(_ramp(luma, LUMA_LOW, LUMA_OK_LOW), 1.0 - _ramp(luma, LUMA_OK_HIGH, LUMA_HIGH))
    exposure *= 1.0 - _ramp(clipped, 0.0, CLIPPED_MAX)
    return FaceQuality(
        size=_ramp(iod_px, IOD_PX_MIN, IOD_PX_FULL),
        pose=(_angle_score(pose.yaw_deg, YAW_DEG_FREE, YAW_DEG_MAX)
              * _angle_score(pose.pitch_deg, PITCH_DEG_FREE, PITCH_DEG_MAX)),
        sharpness=sharpness,
        exposure=exposure,
        presence=float(np.clip(presence, 0.0, 1.0)),
        iod_px=float(iod_px),
        laplacian_var=lap_var,
        luma_mean=luma,
    )


class ConfidenceSmoother:
    """Exponential moving average on the frames' own time stamps (time constant ``tau_s``).

    Weighting by elapsed time, not by frame count, keeps the smoothing the same at any frame
    rate and after dropped frames.
    """

    def __init__(self, tau_s: float = 1.0) -> None:
        if tau_s <= 0:
            raise ValueError(f"confidence time constant must be > 0 s, got {tau_s}")
        self.tau_s = tau_s
        self.value: float | None = None
        self._t_ns: int | None = None

    def update(self, x: float, t_ns: int) -> float:
        if self.value is None or self._t_ns is None or t_ns < self._t_ns:
            # First frame, or the clock went back (a new stream): start from this frame.
            self.value = float(x)
        else:
            alpha = 1.0 - math.exp(-((t_ns - self._t_ns) / 1e9) / self.tau_s)
            self.value += alpha * (float(x) - self.value)
        self._t_ns = t_ns
        return self.value

    def reset(self) -> None:
        self.value = None
        self._t_ns = None
