"""The demo's camera: a still photo in gentle motion, which can grimace on cue.

Real photographs through the real face path, without a camera: the photo drifts, breathes in
scale and tilts like a person in bed (``PhotoSource``), and its face can show a pain
expression (``sensors.emulated.expression``) following the simulated patient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sensors.camera import CameraUnavailable, FrameSource
from sensors.clock import Clock
from sensors.emulated.expression import ExpressionUnavailable, FacePoints, PainExpression


def astronaut_photo() -> np.ndarray:
    """scikit-image's ``data.astronaut()``: Eileen Collins' NASA portrait (public domain)."""
    import importlib.util

    # Importing skimage costs ~8 MB of RSS on the device and ~0.1 s; its PNG decoded with
    # Pillow (a dependency of scikit-image) costs ~3 MB and ~25 ms, same pixels.
    spec = importlib.util.find_spec("skimage")
    png = Path(spec.origin).parent / "data" / "astronaut.png" if spec and spec.origin else None
    if png is not None and png.is_file():
        try:
            from PIL import Image
        except ImportError:
            pass
        else:
            with Image.open(png) as image:
                return np.array(image.convert("RGB"))
    try:
        from skimage import data
    except ImportError as exc:
        raise CameraUnavailable(f"the demo photo comes from scikit-image: pip install scikit-image ({exc})") from exc
    return data.astronaut()


#: Output rows warped per pass: the temporaries of one pass stay ~1 MB instead of ~57 MB for a
#: whole 640 x 480 frame (peak RSS on the device), and the gathers stay in cache.
WARP_BAND_ROWS = 32


def similarity_warp(photo: np.ndarray, out_hw: tuple[int, int], scale: float, angle_rad: float,
                    shift_xy: tuple[float, float], fill: int = 96) -> np.ndarray:
    """The photo scaled, rotated about its centre and shifted, on an ``out_hw`` canvas (bilinear)."""
    out_h, out_w = out_hw
    src = photo if photo.ndim == 3 else photo[:, :, None]
    h, w, channels = src.shape
    flat = src.reshape(h * w, channels)
    c, s = math.cos(angle_rad) / scale, math.sin(angle_rad) / scale
    dx = np.arange(out_w, dtype=np.float32)[None, :] + 0.5 - out_w / 2.0 - shift_xy[0]  # pixel centres
    out = np.empty((out_h, out_w, channels), np.uint8)
    for top_row in range(0, out_h, WARP_BAND_ROWS):
        rows = np.arange(top_row, min(top_row + WARP_BAND_ROWS, out_h), dtype=np.float32)[:, None]
        dy = rows + 0.5 - out_h / 2.0 - shift_xy[1]
        sx = c * dx + s * dy + w / 2.0 - 0.5
        sy = -s * dx + c * dy + h / 2.0 - 0.5
        x0, y0 = np.floor(sx).astype(np.intp), np.floor(sy).astype(np.intp)
        fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
        inside = ((x0 >= 0) & (y0 >= 0) & (x0 < w - 1) & (y0 < h - 1))[..., None]
        at = np.clip(y0, 0, h - 2) * w + np.clip(x0, 0, w - 2)  # top-left neighbour, flat
        p00, p01 = flat.take(at, axis=0).astype(np.float32), flat.take(at + 1, axis=0).astype(np.float32)
        p10 = flat.take(at + w, axis=0).astype(np.float32)
        p11 = flat.take(at + w + 1, axis=0).astype(np.float32)
        upper = p00 * (1 - fx) + p01 * fx
        lower = p10 * (1 - fx) + p11 * fx
        band = np.where(inside, upper * (1 - fy) + lower * fy, np.float32(fill))
        out[top_row:top_row + len(rows)] = np.clip(band + 0.5, 0, 255).astype(np.uint8)
    return out if photo.ndim == 3 else out[:, :, 0]


class PhotoSource(FrameSource):
    """A still photo that drifts, breathes in scale and tilts a little, like a person in bed.

    Motion is a slow Lissajous path: +-``shift_px`` at 0.13/0.07 Hz, scale +-``scale_var`` at
    0.05 Hz, rotation +-``tilt_deg`` at 0.09 Hz, all on the frame's time stamp.

    ``expression(t_s) -> 0..1``, called with each frame's clock time in seconds, makes the face
    grimace with that pain intensity (``sensors.emulated.expression``) before it moves. It needs the
    photo's feature points: known for the astronaut photo, else pass ``face_points``.
    """

    name = "photo"

    def __init__(self, photo: np.ndarray | None = None, size: tuple[int, int] = (640, 480),
                 rate_hz: float = 15.0, clock: Clock | None = None, shift_px: float = 20.0,
                 scale_var: float = 0.08, tilt_deg: float = 5.0,
                 expression: Callable[[float], float] | None = None,
                 face_points: FacePoints | None = None) -> None:
        super().__init__(rate_hz, clock)
        self.photo = astronaut_photo() if photo is None else np.asarray(photo)
        if self.photo.ndim not in (2, 3) or self.photo.dtype != np.uint8:
            raise ValueError(f"photo must be an H x W (x 3) uint8 image, got {self.photo.dtype} {self.photo.shape}")
        self.width, self.height = size
        self.shift_px, self.scale_var, self.tilt_deg = shift_px, scale_var, tilt_deg
        self._fit = min(self.width / self.photo.shape[1], self.height / self.photo.shape[0])
        self.expression = expression
        self._face: PainExpression | None = None
        self._faces: tuple[float, np.ndarray] = (0.0, self.photo)
        if expression is not None:
            if face_points is None and photo is not None:
                raise ExpressionUnavailable(
                    "PhotoSource: a pain expression needs the photo's feature points; they are "
                    "known for the astronaut photo only; pass face_points= for this photo")
            self._face = PainExpression(face_points or FacePoints.astronaut())
            if tuple(self.photo.shape[:2]) != tuple(self._face.points.shape):
                raise ExpressionUnavailable(
                    f"PhotoSource: face_points are for a {self._face.points.shape} photo, "
                    f"this photo is {self.photo.shape[:2]}")

    def _face_at(self, t_s: float) -> np.ndarray:
        intensity = float(self.expression(t_s))
        if not (math.isfinite(intensity) and 0.0 <= intensity <= 1.0):
            raise ValueError(f"PhotoSource: expression({t_s:.2f}) gave {intensity!r}, not 0..1")
        # Steps of 1/100 are below what the face path resolves; reuse the last warp within one.
        level = round(intensity, 2)
        if level != self._faces[0]:
            self._faces = (level, self._face.apply(self.photo, level))
        return self._faces[1]

    def _image(self, index: int) -> np.ndarray:
        t = index / self.rate_hz
        photo = self.photo
        if self._face is not None:
            photo = self._face_at((self._t0_ns + round(index * 1e9 / self.rate_hz)) / 1e9)
        scale = self._fit * (1.0 + self.scale_var * math.sin(2 * math.pi * 0.05 * t))
        angle = math.radians(self.tilt_deg) * math.sin(2 * math.pi * 0.09 * t)
        shift = (self.shift_px * math.sin(2 * math.pi * 0.13 * t), self.shift_px * math.sin(2 * math.pi * 0.07 * t))
        return similarity_warp(photo, (self.height, self.width), scale, angle, shift)
