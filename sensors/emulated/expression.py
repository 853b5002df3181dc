"""A pain expression on a still photo: the PSPI action units as a smooth image warp.

The demo's camera is a still photo; to let the real face path measure pain, the photo itself
grimaces. ``PainExpression(points).apply(photo, intensity)`` moves the face's features the way
the actions of the Prkachin & Solomon Pain Intensity move them (Prkachin & Solomon 2008, Pain
139:267-274; FACS, Ekman, Friesen & Hager 2002):

- AU4 brow lowerer: the brows come down and the inner brows draw together (corrugator);
- AU6 cheek raiser: the upper cheeks rise and push the lower lids up;
- AU7 lid tightener / AU43 eyes closed: the lids narrow the eye, and close it at the top of
  the scale (they meet half-way at the middle of the eye, on the line of the canthi at the
  corners);
- AU9 nose wrinkler / AU10 upper lip raiser: the nasal alae and the upper lip rise.

Each movement is a displacement of a feature point; the image is resampled by inverse mapping
(each output pixel reads the photo where its content came from), with Gaussian weights around
the displaced points, blended so that neighbouring points of one feature move together rather
than adding up. The lids are a cut rather than a flow: a band around the line where they meet
reads from beyond the lids, so the skin of the lids slides over the eye. Magnitudes are in
inter-ocular distances (IOD, between the eye centres). At intensity 1 they are about twice the
FACS E-level movements (a maximal brow lowering moves the brow by about 0.1 IOD): on the demo
photo's small face (IOD 43 px) FaceMesh, which regresses towards an average face, follows only
about half of a local movement, and closed lids not at all past ~55 % of the aperture (so the
measured AU43 stays 0; AU7 carries the eyes).

The feature points of a photo are a table measured once on it with the face pipeline
(``ASTRONAUT_FACE``); for another photo, pass its own ``FacePoints``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

# The feature points of scikit-image's astronaut photo (512 x 512), in photo pixels (x, y),
# each the mean of the MediaPipe FaceMesh landmarks named beside it ("_r" is the subject's
# right, on the image's left). Measured once with models.face.FaceEstimator(tracking=False)
# .observe(data.astronaut()).landmarks, averaging the listed indices; the FaceMesh model is
# deterministic on a still image. tests/sensors/test_camera_expression.py checks that the
# table still matches what FaceMesh finds on the photo.
ASTRONAUT_FACE: dict[str, tuple[tuple[float, float], tuple[int, ...]]] = {
    "eye_outer_r": ((194.8, 100.6), (33,)),
    "eye_inner_r": ((213.9, 103.6), (133,)),
    "lid_upper_r": ((202.9, 97.9), (160, 159, 158)),
    "lid_lower_r": ((204.5, 103.8), (144, 145, 153)),
    "eye_outer_l": ((256.7, 104.6), (263,)),
    "eye_inner_l": ((237.3, 104.9), (362,)),
    "lid_upper_l": ((249.0, 100.9), (387, 386, 385)),
    "lid_lower_l": ((246.7, 106.3), (373, 374, 380)),
    "brow_inner_r": ((216.2, 92.1), (107, 55)),
    "brow_mid_r": ((206.1, 89.2), (66, 65)),
    "brow_outer_mid_r": ((198.2, 88.2), (105, 52)),
    "brow_outer_r": ((190.5, 90.7), (70, 63, 46, 53)),
    "brow_inner_l": ((235.6, 93.4), (336, 285)),
    "brow_mid_l": ((245.9, 91.8), (296, 295)),
    "brow_outer_mid_l": ((254.0, 91.8), (334, 282)),
    "brow_outer_l": ((261.6, 95.4), (300, 293, 276, 283)),
    "cheek_r": ((195.8, 115.8), (118, 101, 50)),
    "cheek_l": ((254.3, 119.9), (347, 330, 280)),
    "ala_r": ((210.8, 128.4), (98, 64)),
    "ala_l": ((238.0, 130.4), (327, 294)),
    "subnasale": ((224.0, 133.7), (2,)),
    "upper_lip": ((224.0, 140.1), (0, 37, 267)),
}
ASTRONAUT_SHAPE = (512, 512)

SIDES = ("r", "l")
BROW_POINTS = ("brow_inner", "brow_mid", "brow_outer_mid", "brow_outer")
FEATURES = tuple(f"{name}_{s}" for s in SIDES for name in (
    "eye_outer", "eye_inner", "lid_upper", "lid_lower", *BROW_POINTS, "cheek", "ala")) + (
    "subnasale", "upper_lip")

# Intensity-1 movements in IOD (drawing towards the midline, dropping down, rising up) and the
# Gaussian widths (x, y) of their reach in IOD.
BROW_DROP_IOD, BROW_DRAW_IOD, BROW_SIGMA_IOD = 0.20, 0.07, (0.20, 0.10)
# The corrugator and depressors pull the inner and middle brow down most; the tail less.
BROW_DROP_SHARE = {"brow_inner": 1.0, "brow_mid": 1.0, "brow_outer_mid": 0.85, "brow_outer": 0.5}
CHEEK_RISE_IOD, CHEEK_SIGMA_IOD = 0.12, (0.20, 0.12)
ALA_RISE_IOD, ALA_SIGMA_IOD = 0.18, (0.15, 0.12)
LIP_RISE_IOD, LIP_SIGMA_IOD = 0.10, (0.20, 0.08)
LID_SIGMA_IOD = 0.10  # vertical reach of the lid cut around the line where the lids meet
LID_SEAM_PX = 0.5  # softness of that line: the lash line, a pixel wide
# Share of the aperture the lids cover against intensity: narrowing (AU7) up to 0.7, then
# closing (AU43 once less than 35 % is left, from about 0.8).
LID_CLOSURE = ((0.0, 0.7, 0.95, 1.0), (0.0, 0.45, 1.0, 1.0))


class ExpressionUnavailable(ValueError):
    """No feature points for this photo: the expression cannot be drawn on it."""


@dataclass(frozen=True)
class FacePoints:
    """The feature points (``FEATURES``) of one photo, in its pixels (x, y)."""

    points: Mapping[str, tuple[float, float]]
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        missing = [name for name in FEATURES if name not in self.points]
        if missing:
            raise ValueError(f"FacePoints: missing feature point(s) {', '.join(missing)}")
        for name in FEATURES:
            x, y = self.points[name]
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"FacePoints: {name} is not a finite point: {self.points[name]!r}")

    @classmethod
    def astronaut(cls) -> FacePoints:
        return cls({name: xy for name, (xy, _) in ASTRONAUT_FACE.items()}, ASTRONAUT_SHAPE)

    def xy(self, name: str) -> np.ndarray:
        return np.asarray(self.points[name], dtype=np.float64)

    def eye_centre(self, side: str) -> np.ndarray:
        return (self.xy(f"eye_outer_{side}") + self.xy(f"eye_inner_{side}")) / 2.0

    @property
    def iod_px(self) -> float:
        return float(np.linalg.norm(self.eye_centre("l") - self.eye_centre("r")))


def lid_closure(intensity: float) -> float:
    return float(np.interp(intensity, *LID_CLOSURE))


class PainExpression:
    """``apply(photo, intensity 0..1)``: the photo with a pain face of that intensity.

    Only a box around the face is resampled; intensity 0 returns the photo unchanged.
    """

    def __init__(self, points: FacePoints) -> None:
        self.points = points
        self.iod_px = points.iod_px
        if not self.iod_px > 4.0:
            raise ValueError(f"FacePoints: eyes {self.iod_px:.1f} px apart; not a face to warp")
        pts = np.array([points.xy(n) for n in FEATURES])
        margin = 0.6 * self.iod_px
        h, w = points.shape
        self.box = (max(0, int(pts[:, 1].min() - margin)), min(h, int(pts[:, 1].max() + margin) + 1),
                    max(0, int(pts[:, 0].min() - margin)), min(w, int(pts[:, 0].max() + margin) + 1))
        y0, y1, x0, x1 = self.box
        self._ys, self._xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        self._moves = self._feature_moves()

    def _feature_moves(self) -> list[tuple[np.ndarray, np.ndarray, tuple[float, float]]]:
        """(point, intensity-1 displacement in px with y down, sigma (x, y) px) per point."""
        p, iod = self.points, self.iod_px
        mid_x = (p.eye_centre("r")[0] + p.eye_centre("l")[0]) / 2.0
        moves = []

        def add(name: str, dx_iod: float, dy_iod: float, sigma_iod: tuple[float, float]) -> None:
            xy = p.xy(name)
            medial = 1.0 if xy[0] < mid_x else -1.0
            moves.append((xy, np.array([medial * dx_iod * iod, dy_iod * iod]),
                          (sigma_iod[0] * iod, sigma_iod[1] * iod)))

        for s in SIDES:
            for name in BROW_POINTS:
                draw = BROW_DRAW_IOD if name == "brow_inner" else 0.0
                add(f"{name}_{s}", draw, BROW_DROP_SHARE[name] * BROW_DROP_IOD, BROW_SIGMA_IOD)
            add(f"cheek_{s}", 0.0, -CHEEK_RISE_IOD, CHEEK_SIGMA_IOD)
            add(f"ala_{s}", 0.0, -ALA_RISE_IOD, ALA_SIGMA_IOD)
        add("upper_lip", 0.0, -LIP_RISE_IOD, LIP_SIGMA_IOD)
        return moves

    # -- the source position of each output pixel of the box -------------------------------
    def _lid_cut(self, xs: np.ndarray, ys: np.ndarray, closure: float) -> np.ndarray:
        """Vertical offset (px) at which each pixel reads the photo when the lids cover
        ``closure`` of the eye: they meet on the line through the eye's corners."""
        out = np.zeros_like(ys)
        if closure <= 0:
            return out
        p = self.points
        for s in SIDES:
            (xo, yo), (xi, yi) = p.xy(f"eye_outer_{s}"), p.xy(f"eye_inner_{s}")
            half_w = abs(xi - xo) / 2.0
            cx = (xo + xi) / 2.0
            upper, lower = p.xy(f"lid_upper_{s}")[1], p.xy(f"lid_lower_{s}")[1]
            # flat across the eye, falling off at the corners (a 4th-order super-Gaussian)
            along = np.exp(-0.5 * ((xs - cx) / (0.8 * half_w)) ** 4)
            # The lids meet half-way at the middle of the eye (the lower lid rises too: AU6/7
            # push it up) and on the line of the canthi at the corners.
            canthi = yo + (yi - yo) * (xs - xo) / (xi - xo)
            middle = (upper + lower) / 2.0
            seam = canthi + (middle - (yo + yi) / 2.0) * along
            above, below = max(0.0, middle - upper), max(0.0, lower - middle)
            d = ys - seam
            across = np.exp(-0.5 * (d / (LID_SIGMA_IOD * self.iod_px)) ** 2)
            reach = np.where(d < 0, above, below)
            out += closure * reach * along * across * np.tanh(d / LID_SEAM_PX)
        return out

    def _flow(self, xs: np.ndarray, ys: np.ndarray, intensity: float) -> tuple[np.ndarray, np.ndarray]:
        """Inverse displacement: each feature point ``c`` moved by ``D`` is read back from ``c``
        around ``c + D``. Where the points' weights overlap, the displacement is their weighted
        mean and its reach their union, ``1 - prod(1 - g)``: the points of one brow move as one
        brow instead of adding up, and the reach falls off no faster than one point's."""
        weight = np.zeros_like(xs)
        ux = np.zeros_like(xs)
        uy = np.zeros_like(xs)
        miss = np.ones_like(xs)
        for xy, move, (sx, sy) in self._moves:
            d = intensity * move
            rx, ry = xs - xy[0] - d[0], ys - xy[1] - d[1]
            # Behind the moving point the skin stretches: there the weight falls off over at
            # least the full travel, so that the map never folds back on itself; ahead of it
            # the skin bunches up, which cannot fold.
            trail = max(sy, abs(move[1]))
            sy_side = np.where(ry * move[1] < 0, trail, sy)
            g = np.exp(-0.5 * ((rx / sx) ** 2 + (ry / sy_side) ** 2))
            weight += g
            ux -= g * d[0]
            uy -= g * d[1]
            miss *= 1.0 - g
        reach = (1.0 - miss) / np.maximum(weight, 1e-12)
        return ux * reach, uy * reach

    def source_xy(self, intensity: float) -> tuple[np.ndarray, np.ndarray]:
        """Where each pixel of ``box`` reads the photo: the features' flow, then the lids."""
        qx_off, qy_off = self._flow(self._xs, self._ys, intensity)
        qx, qy = self._xs + qx_off, self._ys + qy_off
        return qx, qy + self._lid_cut(qx, qy, lid_closure(intensity))

    def apply(self, photo: np.ndarray, intensity: float) -> np.ndarray:
        if photo.shape[:2] != tuple(self.points.shape):
            raise ValueError(f"expression: the face points are for a {self.points.shape} photo, "
                             f"got {photo.shape[:2]}")
        if not (math.isfinite(intensity) and 0.0 <= intensity <= 1.0):
            raise ValueError(f"expression intensity must be in 0..1, got {intensity!r}")
        if intensity == 0.0:
            return photo
        sx, sy = self.source_xy(intensity)
        y0, y1, x0, x1 = self.box
        out = photo.copy()
        out[y0:y1, x0:x1] = bilinear(photo, sx, sy)
        return out


def bilinear(image: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """``image`` sampled at (sx, sy) (pixel centres at integers), edges clamped."""
    h, w = image.shape[:2]
    sx = np.clip(sx, 0.0, w - 1.000001)
    sy = np.clip(sy, 0.0, h - 1.000001)
    x0, y0 = np.floor(sx).astype(np.intp), np.floor(sy).astype(np.intp)
    fx, fy = sx - x0, sy - y0
    p = image.astype(np.float32)
    if image.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = p[y0, x0] * (1 - fx) + p[y0, x0 + 1] * fx
    bottom = p[y0 + 1, x0] * (1 - fx) + p[y0 + 1, x0 + 1] * fx
    return np.clip(top * (1 - fy) + bottom * fy + 0.5, 0, 255).astype(image.dtype)


def pain_expression(scenario, pain_full: float = 10.0) -> Callable[[float], float]:
    """The simulated subject's grimace: ``t_s -> intensity``, the scenario's ``pain`` (0..10)
    over ``pain_full``, clipped to 0..1; works with anything that has ``columns_at(t_s)``."""
    if not pain_full > 0:
        raise ValueError(f"pain_full must be > 0, got {pain_full!r}")

    def intensity(t_s: float) -> float:
        pain = float(np.asarray(scenario.columns_at(t_s)["pain"]))
        return float(min(1.0, max(0.0, pain / pain_full)))

    return intensity
