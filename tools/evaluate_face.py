"""The face path against frame-level PSPI labels (UNBC-McMaster layout): MAE, r, AUROC per subject.

    python -m tools.evaluate_face --data DIR [--neutral rest|canonical] [--scales FILE]

Each sequence runs through ``FaceEstimator`` (tracking, as on the device) frame by frame. The
neutral face is what the device's calibration would take: the median of the sequence's first
``REST_FRAMES`` frames labelled PSPI 0 (else the subject's, else the canonical face);
``--neutral canonical`` reads every frame against the canonical face (uncalibrated).
Per subject: frames, share with a face found, PSPI MAE and Pearson r against the label, and
AUROC of PSPI > 0 vs PSPI = 0 for the plain PSPI and for the face's score (pain PSPI, which
sets smiles and yawns aside). Frames without a face are left out of the figures and counted.
``--scales`` takes AU constants refitted by ``python -m tools.refit_face``.
The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.face import action_units as au
from models.face.pain_context import pain_pspi
from tools import unbc
from tools.bench.fusion import auroc

REST_FRAMES = 30


@dataclass(frozen=True)
class FrameReading:
    frame: unbc.UnbcFrame
    measures: dict[str, float] | None  # None: no face found
    neutral: au.NeutralBaseline


def _neutral(frames, measured, fallback: au.NeutralBaseline) -> au.NeutralBaseline:
    rest = [m for f, m in zip(frames, measured) if f.pspi == 0 and m is not None][:REST_FRAMES]
    return au.NeutralBaseline.from_measures(rest) if rest else fallback


def measure(data: unbc.UnbcSet, model_dir, neutral: str = "rest") -> list[FrameReading]:
    """Each labelled frame's face measures and the neutral face it is read against."""
    from PIL import Image

    from models.face import FaceEstimator

    if neutral not in ("rest", "canonical"):
        raise ValueError(f"neutral must be 'rest' or 'canonical', got {neutral!r}")
    est = FaceEstimator(model_dir, emotion=False)
    per_sequence = {}
    for key, frames in data.sequences().items():
        est.reset()
        measured = []
        for f in frames:
            obs = est.observe(np.asarray(Image.open(f.image).convert("RGB")))
            measured.append(dict(obs.measures) if obs.has_face else None)
        per_sequence[key] = (frames, measured)
    canonical = au.NeutralBaseline.canonical()
    out = []
    for (subject, _), (frames, measured) in per_sequence.items():
        base = canonical
        if neutral == "rest":
            own = [(f, m) for (s, _), (fs, ms) in per_sequence.items() if s == subject for f, m in zip(fs, ms)]
            base = _neutral(frames, measured, _neutral([f for f, _ in own], [m for _, m in own], canonical))
        out.extend(FrameReading(f, m, base) for f, m in zip(frames, measured))
    return out


def predict(readings: list[FrameReading], scales=None) -> list[dict[str, float] | None]:
    """Per reading the AUs with "pspi" and "pain_pspi", or None without a face."""
    out = []
    for r in readings:
        if r.measures is None:
            out.append(None)
            continue
        aus = au.action_units(r.measures, r.neutral, scales)
        calibrated = r.neutral.source != "canonical"
        out.append({**aus, "pspi": au.pspi(aus), "pain_pspi": pain_pspi(aus, calibrated=calibrated)})
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def figures(labels: np.ndarray, pspi: np.ndarray, pain: np.ndarray) -> dict[str, float]:
    return {"mae": float(np.mean(np.abs(pspi - labels))) if len(labels) else float("nan"),
            "r": pearson(pspi, labels),
            "auroc": auroc(pspi, labels > 0), "auroc_pain_pspi": auroc(pain, labels > 0)}


def evaluate(readings: list[FrameReading], scales=None) -> dict[str, dict]:
    """Figures per subject, "all" (frames pooled) and "mean" (over subjects)."""
    preds = predict(readings, scales)
    rows: dict[str, list] = {}
    for r, p in zip(readings, preds):
        rows.setdefault(r.frame.subject, []).append((r.frame.pspi, p))
    out: dict[str, dict] = {}
    pooled = []
    for subject, items in sorted(rows.items()):
        seen = [(lab, p) for lab, p in items if p is not None]
        pooled.extend(seen)
        lab = np.array([x[0] for x in seen])
        out[subject] = {"frames": len(items), "with_face": len(seen),
                        **figures(lab, np.array([p["pspi"] for _, p in seen]),
                                  np.array([p["pain_pspi"] for _, p in seen]))}
    lab = np.array([x[0] for x in pooled])
    out["all"] = {"frames": len(readings), "with_face": len(pooled),
                  **figures(lab, np.array([p["pspi"] for _, p in pooled]),
                            np.array([p["pain_pspi"] for _, p in pooled]))}
    subjects = [out[s] for s in rows]
    out["mean"] = {k: float(np.nanmean([s[k] for s in subjects])) if any(math.isfinite(s[k]) for s in subjects)
                   else float("nan") for k in ("mae", "r", "auroc", "auroc_pain_pspi")}
    return out


def format_table(result: dict[str, dict]) -> str:
    lines = [f"{'subject':16s} {'frames':>7s} {'face':>6s} {'PSPI MAE':>9s} {'r':>6s} {'AUROC':>6s} "
             f"{'AUROC pain PSPI':>16s}"]
    for name, row in result.items():
        if name == "mean":
            lines.append(f"{'mean of subjects':16s} {'':>7s} {'':>6s} {row['mae']:9.2f} {row['r']:6.2f} "
                         f"{row['auroc']:6.2f} {row['auroc_pain_pspi']:16.2f}")
            continue
        share = row["with_face"] / row["frames"] if row["frames"] else float("nan")
        lines.append(f"{name:16s} {row['frames']:7d} {share:6.0%} {row['mae']:9.2f} {row['r']:6.2f} "
                     f"{row['auroc']:6.2f} {row['auroc_pain_pspi']:16.2f}")
    return "\n".join(lines)


def finite_or_none(obj):
    """JSON has no NaN: figures that could not be computed (one class only) become null."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def load_scales(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not an AU scales file ({exc})") from exc
    return au.check_scales(data.get("scales", data) if isinstance(data, dict) else data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.evaluate_face", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="root of a UNBC-McMaster layout folder")
    parser.add_argument("--neutral", choices=("rest", "canonical"), default="rest")
    parser.add_argument("--scales", type=Path, default=None, help="refitted AU constants (JSON)")
    parser.add_argument("--model-dir", type=Path, default=None, help="face models (default: painmon's)")
    args = parser.parse_args(argv)
    from device.config.paths import default_model_dir

    try:
        data = unbc.load(args.data)
        scales = load_scales(args.scales) if args.scales else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    readings = measure(data, args.model_dir or default_model_dir(), args.neutral)
    result = evaluate(readings, scales)
    print(f"face vs frame-level PSPI, {len(data.subjects())} subjects, {len(data.frames)} labelled frames"
          f" ({len(data.unlabelled)} images without a label skipped), neutral: {args.neutral}, "
          f"AU constants: {args.scales or 'engineering'}, {time.perf_counter() - t0:.0f} s")
    print(format_table(result))
    print(json.dumps({"evaluation": "face_unbc", "data": str(args.data), "neutral": args.neutral,
                      "scales": str(args.scales) if args.scales else None,
                      "results": finite_or_none(result)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
