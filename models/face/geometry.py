"""Head pose and frontalised landmarks: FaceMesh points aligned to MediaPipe's canonical face.

A similarity (Umeyama 1991, "Least-squares estimation of transformation parameters between two
point patterns", IEEE TPAMI 13(4)) fitted on landmarks that expressions barely move (eye
corners, nose bridge and tip, subnasale, forehead, face sides) gives the head rotation (yaw,
pitch, roll for quality) and maps every landmark into the canonical face's frame, so that
action-unit distances are measured as if the face were frontal and upright.

The reference positions are those vertices of MediaPipe's ``canonical_face_model.obj``
(Apache-2.0), converted to image-style axes: x to the image right, y down, z away from the
camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGID_INDICES = np.array([33, 133, 362, 263, 168, 6, 1, 2, 10, 151, 234, 454])
_CANONICAL_RIGID = np.array(
    [
        [-4.445859, 2.663991, 3.173422],
        [-1.856432, 2.585245, 3.757904],
        [1.856432, 2.585245, 3.757904],
        [4.445859, 2.663991, 3.173422],
        [0.0, 3.271027, 5.236015],
        [0.0, 2.473255, 5.788627],
        [0.0, -1.126865, 7.475604],
        [0.0, -2.089024, 6.058267],
        [0.0, 8.261778, 4.481535],
        [0.0, 6.545390, 5.027311],
        [-7.664182, 0.673132, -2.435867],
        [7.664182, 0.673132, -2.435867],
    ]
) * np.array([1.0, -1.0, -1.0])


@dataclass(frozen=True, slots=True)
class FacePose:
    """Head rotation in degrees (0, 0, 0 facing the camera upright) and alignment residual.

    ``residual`` is the RMS distance of the rigid landmarks from the fitted canonical face, in
    inter-ocular units: large when the landmarks are not a face (a lost track).
    """

    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    scale: float
    residual: float


def frontalise(points: np.ndarray) -> tuple[np.ndarray, FacePose]:
    """(468, 3) image-space landmarks -> (468, 3) in canonical-face units, and the head pose."""
    x = points[RIGID_INDICES].astype(np.float64)
    y = _CANONICAL_RIGID
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    cov = yc.T @ xc / len(x)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = (u * sign) @ vt  # observed -> canonical
    var_x = (xc**2).sum() / len(x)
    scale = float((d * sign).sum() / var_x) if var_x > 0 else 0.0
    frontal = scale * (points - mx) @ rot.T + my
    fitted = frontal[RIGID_INDICES]
    iod = float(np.linalg.norm(y[3] - y[0]))
    residual = float(np.sqrt(((fitted - y) ** 2).sum(axis=1).mean()) / iod)
    head = rot.T  # canonical axes seen in the camera frame
    hx, hy = head[:, 0], head[:, 1]
    pose = FacePose(
        yaw_deg=float(np.degrees(np.arctan2(hx[2], hx[0]))),
        pitch_deg=float(np.degrees(np.arctan2(hy[2], hy[1]))),
        roll_deg=float(np.degrees(np.arctan2(hx[1], hx[0]))),
        scale=scale,
        residual=residual,
    )
    return frontal, pose
