"""Facial action units from landmark geometry, relative to the person's neutral face; PSPI.

Action units are those of FACS (Ekman, Friesen & Hager 2002, "Facial Action Coding System:
the manual"). The Prkachin & Solomon Pain Intensity (Prkachin & Solomon 2008, "The structure,
reliability and validity of pain expression", Pain 139:267-274) sums the intensities of the
actions that carry most of the pain signal:

    PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43        (0..16)

with AU intensities 0..5 (FACS A..E) and AU43 0/1. It is the frame-level label of the UNBC-
McMaster shoulder pain archive (Lucey et al. 2011, FG).

Geometry, not appearance: each AU is read from distances between FaceMesh landmarks after
frontalisation (``geometry.frontalise``), divided by the inter-ocular distance (IOD, between
the eye centres taken as the midpoints of the eye corners, which no AU here moves) and compared
with the same distances on the person's neutral face. This is the approach of the geometric AU
detectors (Tian, Kanade & Cohn 2001, "Recognizing action units for facial expression
analysis", IEEE TPAMI 23(2), brow/eye/lip distances normalised by face size; Valstar & Pantic
2012, "Fully automatic recognition of the temporal phases of facial actions", IEEE TSMC-B
42(1), point distances relative to a neutral frame); eye closure uses the lid aperture as the
eye aspect ratio of Soukupova & Cech 2016 (CVWW).

Definitions (all distances vertical or horizontal in the frontal frame, in IOD; "drop" is
neutral minus current):
- AU4 brow lowerer: drop of the inner/middle brow above the eye line (0.7) and of the gap
  between the inner brows, which the corrugator draws together (0.3).
- AU6 cheek raiser: drop of the upper cheek (infra-orbital) points below the eye line.
- AU7 lid tightener: rise of the lower lid towards the eye line, with the narrowing of the lid
  aperture while the eye is open.
- AU9 nose wrinkler: rise of the nasal alae towards the eye line.
- AU10 upper lip raiser: drop of the subnasale-to-upper-lip distance.
- AU12 lip corner puller: rise of the mouth corners towards the eye line (FACS: corners pulled
  up and back obliquely; an E-level smile lifts them about 1 cm, 0.15 IOD).
- AU20 lip stretcher: widening of the mouth, discounted when the corners rise (that is AU12).
- AU25 lips part: growth of the gap between the inner lip midpoints.
- AU26 jaw drop: growth of the subnasale-to-chin distance (E-level about 2 cm, 0.3 IOD).
- AU43 eyes closed: lid aperture below 35 % of neutral.
Intensity = 5 * clip((change - dead_zone) / (full_scale - dead_zone), 0, 1). The dead zones sit
above the frame-to-frame landmark jitter measured on still photos; the full scales are
anatomical magnitudes of the E-level movements expressed in IOD (e.g. a maximal brow lowering
moves the brow about 6-7 mm, 0.1 IOD). They are engineering constants, to be refitted on
labelled data (UNBC-McMaster) when available.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (subject's right side, subject's left side); the left are MediaPipe's mirrors of the right.
EYE_CORNERS = ((33, 133), (263, 362))
UPPER_LID = ((160, 159, 158), (387, 386, 385))
LOWER_LID = ((144, 145, 153), (373, 374, 380))
BROW = ((105, 66, 107, 52, 65, 55), (334, 296, 336, 282, 295, 285))
BROW_OUTER = ((70, 63, 46, 53), (300, 293, 276, 283))
INNER_BROW = ((107, 55), (336, 285))
CHEEK = ((118, 101, 50), (347, 330, 280))
ALA = ((98, 64), (327, 294))
SUBNASALE = 2
UPPER_LIP = (0, 37, 267)
MOUTH_CORNERS = (61, 291)
INNER_LIPS = (13, 14)  # upper and lower inner lip midpoints
CHIN = 152

MEASURES = (
    "brow_eye", "brow_gap", "eye_aperture", "lower_lid", "cheek_eye", "ala_eye",
    "lip_nose", "mouth_width", "mouth_corner", "lip_gap", "jaw_drop",
)
#: Measures added after baselines were first stored: an older stored baseline lacks them and
#: takes the canonical face's values for them (the mouth then reads against the average face).
LATER_MEASURES = ("lip_gap", "jaw_drop")
ACTION_UNITS = ("au4", "au6", "au7", "au9", "au10", "au12", "au20", "au25", "au26", "au43")
EYES_CLOSED_FRACTION = 0.35

# The measures on MediaPipe's canonical face model (a neutral average face), used until the
# person's own neutral face is known.
CANONICAL_NEUTRAL = {
    "brow_eye": 0.334528,
    "brow_gap": 0.415178,
    "eye_aperture": 0.099617,
    "lower_lid": 0.047794,
    "cheek_eye": 0.409822,
    "ala_eye": 0.652234,
    "lip_nose": 0.200882,
    "mouth_width": 0.779464,
    "mouth_corner": 1.105509,
    # canonical_face_model.obj: inner lips 13/14 at y -3.994436/-4.542400, chin 152 at
    # -9.403378, subnasale 2 at -2.089024, IOD 6.302291 (the mesh's lips are slightly apart).
    "lip_gap": 0.086947,
    "jaw_drop": 1.160587,
}

# (dead zone, full scale) in IOD, or in fraction of neutral for the aperture.
_SCALES = {
    "brow_eye": (0.012, 0.10),
    "brow_gap": (0.012, 0.08),
    "cheek_eye": (0.010, 0.07),
    "lower_lid": (0.006, 0.035),
    "aperture": (0.12, 0.60),
    "ala_eye": (0.010, 0.07),
    "lip_nose": (0.008, 0.06),
    "mouth_width": (0.020, 0.15),
    "corner_rise": (0.0, 0.05),
    "au12_rise": (0.02, 0.15),
    "lip_gap": (0.02, 0.15),
    "jaw_drop": (0.04, 0.30),
}


def _mean_y(points: np.ndarray, idx) -> float:
    return float(points[list(idx), 1].mean())


def measure(frontal: np.ndarray) -> dict[str, float]:
    """The geometric measures (IOD units) of one face, from frontalised (468, 3) landmarks."""
    p = frontal
    centres = [p[list(c), :2].mean(axis=0) for c in EYE_CORNERS]
    iod = float(np.linalg.norm(centres[1] - centres[0]))
    if not np.isfinite(iod) or iod <= 1e-9:
        raise ValueError("landmarks have no inter-ocular distance; not a face")
    eye_y = [float(c[1]) for c in centres]
    eye_line = (eye_y[0] + eye_y[1]) / 2.0
    side = range(2)
    aperture = np.mean([p[list(LOWER_LID[s]), 1] - p[list(UPPER_LID[s]), 1] for s in side])
    inner = [p[list(INNER_BROW[s]), 0].mean() for s in side]
    return {
        "brow_eye": float(np.mean([eye_y[s] - _mean_y(p, BROW[s]) for s in side])) / iod,
        "brow_gap": float(inner[1] - inner[0]) / iod,
        "eye_aperture": float(aperture) / iod,
        "lower_lid": float(np.mean([_mean_y(p, LOWER_LID[s]) - eye_y[s] for s in side])) / iod,
        "cheek_eye": float(np.mean([_mean_y(p, CHEEK[s]) - eye_y[s] for s in side])) / iod,
        "ala_eye": float(np.mean([_mean_y(p, ALA[s]) - eye_y[s] for s in side])) / iod,
        "lip_nose": (_mean_y(p, UPPER_LIP) - float(p[SUBNASALE, 1])) / iod,
        "mouth_width": float(np.linalg.norm(p[MOUTH_CORNERS[1], :2] - p[MOUTH_CORNERS[0], :2])) / iod,
        "mouth_corner": (_mean_y(p, MOUTH_CORNERS) - eye_line) / iod,
        "lip_gap": float(p[INNER_LIPS[1], 1] - p[INNER_LIPS[0], 1]) / iod,
        "jaw_drop": float(p[CHIN, 1] - p[SUBNASALE, 1]) / iod,
    }


@dataclass(frozen=True)
class NeutralBaseline:
    """A person's neutral-face measures; ``source`` is "canonical" or "calibrated"."""

    measures: dict[str, float]
    frames: int = 0
    source: str = "calibrated"

    def __post_init__(self) -> None:
        missing = [m for m in MEASURES if m not in self.measures]
        if missing:
            raise ValueError(f"neutral baseline is missing measure(s): {', '.join(missing)}")
        bad = [m for m in MEASURES if not np.isfinite(self.measures[m])]
        if bad:
            raise ValueError(f"neutral baseline has non-finite measure(s): {', '.join(bad)}")
        if self.measures["eye_aperture"] <= 0:
            raise ValueError("neutral baseline: eye_aperture must be > 0 (eyes open when calibrating)")

    @classmethod
    def canonical(cls) -> NeutralBaseline:
        return cls(dict(CANONICAL_NEUTRAL), frames=0, source="canonical")

    def to_dict(self) -> dict:
        return {"measures": {m: float(self.measures[m]) for m in MEASURES}, "frames": self.frames,
                "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> NeutralBaseline:
        if not isinstance(data, dict) or "measures" not in data:
            raise ValueError("neutral baseline dict needs a 'measures' mapping")
        measures = {m: float(v) for m, v in data["measures"].items() if m in MEASURES}
        for m in LATER_MEASURES:
            measures.setdefault(m, CANONICAL_NEUTRAL[m])
        return cls(measures, int(data.get("frames", 0)), str(data.get("source", "calibrated")))

    @classmethod
    def from_measures(cls, samples: list[dict[str, float]]) -> NeutralBaseline:
        """Median of several frames' measures: robust to a blink or a word mid-calibration."""
        if not samples:
            raise ValueError("no face measures to build a neutral baseline from")
        return cls({m: float(np.median([s[m] for s in samples])) for m in MEASURES}, len(samples))


class BaselineAccumulator:
    """Collects ``frames`` faces' measures, then yields their median as the neutral baseline."""

    def __init__(self, frames: int = 30) -> None:
        if frames < 1:
            raise ValueError(f"calibration needs at least 1 frame, got {frames}")
        self.frames = frames
        self.samples: list[dict[str, float]] = []

    @property
    def complete(self) -> bool:
        return len(self.samples) >= self.frames

    def add(self, measures: dict[str, float]) -> NeutralBaseline | None:
        """Add one frame; returns the baseline once enough frames are in, else None."""
        if not self.complete:
            self.samples.append(dict(measures))
        return NeutralBaseline.from_measures(self.samples) if self.complete else None


#: Which AU each scale sets (what ``tools.refit_face`` fits each scale against).
SCALE_AU = {
    "brow_eye": "au4", "brow_gap": "au4", "cheek_eye": "au6", "lower_lid": "au7", "aperture": "au7",
    "ala_eye": "au9", "lip_nose": "au10", "au12_rise": "au12", "mouth_width": "au20",
    "lip_gap": "au25", "jaw_drop": "au26",
}


def default_scales() -> dict[str, tuple[float, float]]:
    """The engineering (dead zone, full scale) constants, as a copy to refit or override."""
    return dict(_SCALES)


def check_scales(scales: dict) -> dict[str, tuple[float, float]]:
    """``scales`` (e.g. from a refit JSON) over the defaults, validated; unknown keys refused."""
    out = default_scales()
    for key, value in scales.items():
        if key not in out:
            raise ValueError(f"AU scales: unknown scale {key!r} (known: {', '.join(sorted(out))})")
        try:
            dead, full = (float(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"AU scales: {key} must be [dead_zone, full_scale], got {value!r}") from exc
        if not (np.isfinite(dead) and np.isfinite(full) and full > dead):
            raise ValueError(f"AU scales: {key} needs finite values with full scale > dead zone, got {value!r}")
        out[key] = (dead, full)
    return out


def action_units(measures: dict[str, float], neutral: NeutralBaseline,
                 scales: dict[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """AU intensities (0..5; AU43 0/1) and the continuous eye closure (0..1) behind AU43.

    ``scales`` replaces the (dead zone, full scale) constants (``check_scales``), e.g. refitted.
    Measures (and the neutral's) may also be numpy arrays, one value per frame: the AUs are
    then arrays too (``tools.refit_face`` reads thousands of frames at once this way).
    """
    table = _SCALES if scales is None else scales

    def _ramp(change, scale_key: str):
        dead, full = table[scale_key]
        return np.clip((change - dead) / (full - dead), 0.0, 1.0)

    n = neutral.measures
    drop = {m: n[m] - measures[m] for m in MEASURES}
    openness = measures["eye_aperture"] / n["eye_aperture"]
    closed = openness < EYES_CLOSED_FRACTION
    lid = _ramp(drop["lower_lid"], "lower_lid")
    # A closed eye has no aperture left to narrow: only the lower lid speaks for AU7 then.
    narrowing = np.where(closed, 0.0, _ramp(1.0 - openness, "aperture"))
    corner_rise = _ramp(drop["mouth_corner"], "corner_rise")
    aus = {
        "au4": 5.0 * (0.7 * _ramp(drop["brow_eye"], "brow_eye") + 0.3 * _ramp(drop["brow_gap"], "brow_gap")),
        "au6": 5.0 * _ramp(drop["cheek_eye"], "cheek_eye"),
        "au7": 5.0 * np.where(closed, lid, 0.5 * (lid + narrowing)),
        "au9": 5.0 * _ramp(drop["ala_eye"], "ala_eye"),
        "au10": 5.0 * _ramp(drop["lip_nose"], "lip_nose"),
        "au12": 5.0 * _ramp(drop["mouth_corner"], "au12_rise"),
        "au20": 5.0 * _ramp(-drop["mouth_width"], "mouth_width") * (1.0 - corner_rise),
        "au25": 5.0 * _ramp(-drop["lip_gap"], "lip_gap"),
        "au26": 5.0 * _ramp(-drop["jaw_drop"], "jaw_drop"),
        "au43": np.where(closed, 1.0, 0.0),
        "eye_closure": np.clip(1.0 - openness, 0.0, 1.0),
    }
    if np.ndim(openness) == 0:
        return {k: float(v) for k, v in aus.items()}
    return aus


def pspi(aus: dict[str, float]) -> float:
    """Prkachin & Solomon Pain Intensity, 0..16."""
    return float(aus["au4"] + max(aus["au6"], aus["au7"]) + max(aus["au9"], aus["au10"]) + aus["au43"])


def pspi_to_score(value: float) -> float:
    """PSPI 0..16 -> the 0..10 modality score, linearly (PSPI 16 = 10)."""
    return float(min(10.0, max(0.0, value * 10.0 / 16.0)))
