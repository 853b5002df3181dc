"""Refit the AU constants (dead zone, full scale of each measure) on frame-level FACS labels.

    python -m tools.refit_face --data DIR --out scales.json [--neutral rest|canonical]

The data is a UNBC-McMaster layout folder (``tools.unbc``). Each constant of
``action_units._SCALES`` is fitted against the AU it sets (``action_units.SCALE_AU``) by
coordinate descent over a grid around its current value, minimising the mean absolute error of
that AU's intensity against the coded one (an AU not listed in a frame's FACS file is 0). A
candidate replaces the current value only if it lowers the error.

Out-of-subject figures come first: for each subject, the constants are fitted on the other
subjects and the PSPI MAE, r and AUROC are measured on this one (``tools.evaluate_face``),
beside the engineering constants on the same frames. Then the constants are fitted on every
subject and written to ``--out``; ``python -m tools.evaluate_face --scales FILE`` and
``FaceEstimator(au_scales=...)`` read them. The fit reads all frames at once (numpy arrays
through ``action_units``); measuring the frames through the face path takes most of the time.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from models.face import action_units as au
from tools import unbc
from tools.evaluate_face import FrameReading, evaluate, finite_or_none, format_table, measure

DEAD_FACTORS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
SPAN_FACTORS = (0.33, 0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0)
PASSES = 2


@dataclass(frozen=True)
class FrameTable:
    """The frames with a face as arrays: measures, their neutral, coded AU intensities."""

    measures: dict[str, np.ndarray]
    neutral: SimpleNamespace  # .measures: dict of arrays, what action_units reads
    coded: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.coded["au4"])


def frame_table(readings: list[FrameReading]) -> FrameTable:
    readings = [r for r in readings if r.measures is not None]
    if not readings:
        raise ValueError("no frame with a face to fit the AU constants on")
    measures = {m: np.array([r.measures[m] for r in readings]) for m in au.MEASURES}
    neutral = {m: np.array([r.neutral.measures[m] for r in readings]) for m in au.MEASURES}
    coded = {a: np.array([r.frame.aus.get(a, 0.0) for r in readings]) for a in set(au.SCALE_AU.values())}
    return FrameTable(measures, SimpleNamespace(measures=neutral), coded)


def au_error(table: FrameTable, scales: dict, au_name: str) -> float:
    """Mean absolute error of one AU's intensity against the coded one, over the table."""
    return float(np.mean(np.abs(au.action_units(table.measures, table.neutral, scales)[au_name]
                                - table.coded[au_name])))


def fit(readings: list[FrameReading]) -> dict:
    """Refitted scales (a full table) from the readings with a face."""
    table = frame_table(readings)
    scales = au.default_scales()
    for _ in range(PASSES):
        for key, au_name in au.SCALE_AU.items():
            best, best_err = scales[key], au_error(table, scales, au_name)
            dead0, full0 = scales[key]
            span0 = full0 - dead0
            for fd in DEAD_FACTORS:
                for fs in SPAN_FACTORS:
                    dead = dead0 * fd
                    candidate = {**scales, key: (dead, dead + span0 * fs)}
                    err = au_error(table, candidate, au_name)
                    if err < best_err - 1e-9:
                        best, best_err = candidate[key], err
            scales[key] = best
    return scales


def out_of_subject(readings: list[FrameReading]) -> dict[str, dict]:
    """Per subject: figures with constants fitted on the others, and with the engineering ones."""
    subjects = sorted({r.frame.subject for r in readings})
    if len(subjects) < 2:
        raise ValueError("out-of-subject refit needs at least two subjects")
    out = {}
    for subject in subjects:
        train = [r for r in readings if r.frame.subject != subject]
        test = [r for r in readings if r.frame.subject == subject]
        refit = evaluate(test, fit(train))[subject]
        default = evaluate(test)[subject]
        out[subject] = {"refit": refit, "engineering": default}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.refit_face", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="where the refitted constants go (JSON)")
    parser.add_argument("--neutral", choices=("rest", "canonical"), default="rest")
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    from device.config.paths import default_model_dir

    try:
        data = unbc.load(args.data)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    readings = measure(data, args.model_dir or default_model_dir(), args.neutral)
    try:
        loso = out_of_subject(readings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("out of subject (constants fitted on the other subjects):")
    print(f"{'subject':16s} {'MAE refit':>10s} {'MAE eng.':>9s} {'r refit':>8s} {'r eng.':>7s} "
          f"{'AUROC refit':>12s} {'AUROC eng.':>11s}")
    for subject, row in loso.items():
        a, b = row["refit"], row["engineering"]
        print(f"{subject:16s} {a['mae']:10.2f} {b['mae']:9.2f} {a['r']:8.2f} {b['r']:7.2f} "
              f"{a['auroc']:12.2f} {b['auroc']:11.2f}")
    scales = fit(readings)
    print("fitted on every subject (in-sample, not a measure of accuracy):")
    print(format_table(evaluate(readings, scales)))
    args.out.write_text(json.dumps({"scales": {k: list(v) for k, v in scales.items()},
                                    "data": str(args.data), "neutral": args.neutral}, indent=1) + "\n")
    print(json.dumps({"refit": "face_au_scales", "out": str(args.out),
                      "out_of_subject": finite_or_none(loso)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
