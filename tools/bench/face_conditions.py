"""The same faces under other cameras and light: how far the face's reading moves.

    python -m tools.bench.face_conditions [--data DIR]

The photographs of people not in pain (``tools.face_photos``; each face alone in its crop, so
that every reading is of the same person) are read as they are and after each change a bedside
camera brings: mirrored; rolled 15 and 30 degrees; half and a quarter the size; JPEG at quality
30; blurred; a third of the light; a gamma of 2.2; sensor noise; grey (a camera without
colour); a night camera's infrared light (grey, flat, a little pink); and the face's height
squeezed to 0.9 or stretched to 1.1 (a face whose proportions differ from the average face's,
or a lens that distorts). Each changed face is read twice: **uncalibrated**, against the
canonical face, as the device reads until the stay's calibration; and **calibrated** against
its own neutral face taken from the unchanged photo, as after a calibration in other light.
Per condition: the faces found, how many read below "mild" (score < 0.5), the mean and the
highest score. The peer, on the same frames in the same run, is the plain PSPI (the face as
it read before smiles and uncalibrated brows were set aside). The other side: the demo's pain
expression (``sensors.emulated.expression``, the photo itself warped: brows down and together,
cheeks, lids, nasal alae and upper lip raised) at intensity 0.5 and 1, under the same changes,
read against the unchanged photo as the neutral face: the score it reaches. The last line is a
JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.face.imaging import to_gray
from tools import face_photos
from tools.bench import cpu_name
from tools.bench.face_nonpain import summary


def _resized(image: np.ndarray, fx: float, fy: float) -> np.ndarray:
    from PIL import Image

    size = (max(1, round(image.shape[1] * fx)), max(1, round(image.shape[0] * fy)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def _rolled(image: np.ndarray, degrees: float) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).rotate(degrees, Image.BILINEAR, expand=True,
                                                    fillcolor=(128, 128, 128)))


def _jpeg(image: np.ndarray, quality: int = 30) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _blurred(image: np.ndarray, sigma_px: float = 2.0) -> np.ndarray:
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(sigma_px)))


def _grey(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(to_gray(image), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _night_ir(image: np.ndarray) -> np.ndarray:
    """What a camera without an IR-cut filter sees under 850 nm light: grey, low contrast, the
    red channel a little higher."""
    y = 40.0 + 0.6 * to_gray(image)
    return np.clip(np.stack([1.08 * y, 0.95 * y, 1.02 * y], axis=2), 0, 255).astype(np.uint8)


def _noisy(image: np.ndarray, sigma: float = 10.0, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as taken": lambda x: x,
    "mirrored": lambda x: np.ascontiguousarray(x[:, ::-1]),
    "rolled 15 deg": lambda x: _rolled(x, 15.0),
    "rolled -15 deg": lambda x: _rolled(x, -15.0),
    "rolled 30 deg": lambda x: _rolled(x, 30.0),
    "half size": lambda x: _resized(x, 0.5, 0.5),
    "quarter size": lambda x: _resized(x, 0.25, 0.25),
    "JPEG quality 30": _jpeg,
    "blurred (sigma 2 px)": _blurred,
    "a third of the light": lambda x: np.clip(x * 0.35, 0, 255).astype(np.uint8),
    "gamma 2.2": lambda x: np.clip(255.0 * (x / 255.0) ** 2.2, 0, 255).astype(np.uint8),
    "sensor noise (sd 10)": _noisy,
    "grey": _grey,
    "night infrared": _night_ir,
    "height x0.9": lambda x: _resized(x, 1.0, 0.9),
    "height x1.1": lambda x: _resized(x, 1.0, 1.1),
}


def single_faces(model_dir, files: dict[str, Path]) -> list[tuple[str, np.ndarray]]:
    """(name, crop) of every face of the non-pain photos that is alone in its crop."""
    from PIL import Image

    from models.face import FaceEstimator

    finder = FaceEstimator(model_dir, tracking=False, emotion=False)
    out = []
    for item in face_photos.load_manifest():
        if item.get("pain") is not False or "video" in item or item["id"] not in files:
            continue
        image = np.asarray(Image.open(files[item["id"]]).convert("RGB"))
        for i, crop in enumerate(face_photos.face_crops(finder, image)):
            if len(finder.detector.detect(crop)) == 1:
                out.append((item["id"] + (f" #{i}" if i else ""), crop))
    return out


def read(model_dir, faces, conditions=CONDITIONS) -> dict[str, dict[str, list]]:
    """condition -> {"uncalibrated", "calibrated", "plain"}: one score per face found, and
    "lost": the faces not found."""
    from models.face import FaceEstimator, neutral_from_frames
    from models.face import action_units as au

    canonical = FaceEstimator(model_dir, tracking=False, emotion=False)
    out = {name: {"uncalibrated": [], "calibrated": [], "plain": [], "lost": []} for name in conditions}
    for face_name, crop in faces:
        own = FaceEstimator(model_dir, tracking=False, emotion=False,
                            neutral=neutral_from_frames(canonical, [crop]))
        for name, change in conditions.items():
            frame = change(crop)
            obs = canonical.observe(frame)
            if not obs.has_face:
                out[name]["lost"].append(face_name)
                continue
            estimate = canonical.estimate(obs)
            out[name]["uncalibrated"].append(float(estimate.score))
            out[name]["plain"].append(au.pspi_to_score(float(estimate.features["pspi"])))
            own_obs = own.observe(frame)
            if own_obs.has_face:
                out[name]["calibrated"].append(float(own.estimate(own_obs).score))
    return out


PAIN_INTENSITIES = (0.5, 1.0)


def read_pain(model_dir, conditions=CONDITIONS) -> dict[str, dict[float, float | None]]:
    """condition -> {intensity: the score of the demo photo's pain expression against the photo
    at rest as its neutral face (None: no face found)}."""
    from models.face import FaceEstimator, neutral_from_frames
    from sensors.emulated.expression import FacePoints, PainExpression
    from sensors.emulated.photo import astronaut_photo

    photo = astronaut_photo()
    grimace = PainExpression(FacePoints.astronaut())
    finder = FaceEstimator(model_dir, tracking=False, emotion=False)
    own = FaceEstimator(model_dir, tracking=False, emotion=False,
                        neutral=neutral_from_frames(finder, [photo]))
    out: dict[str, dict[float, float | None]] = {name: {} for name in conditions}
    for intensity in PAIN_INTENSITIES:
        face = grimace.apply(photo, intensity)
        for name, change in conditions.items():
            obs = own.observe(change(face))
            out[name][intensity] = float(own.estimate(obs).score) if obs.has_face else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.face_conditions",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="where the photos are fetched to")
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    from device.config.paths import default_model_dir

    t0 = time.perf_counter()
    try:
        files = face_photos.fetch(args.data)
    except face_photos.PhotoFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    model_dir = args.model_dir or default_model_dir()
    faces = single_faces(model_dir, files)
    readings = read(model_dir, faces)
    pain = read_pain(model_dir)
    print(f"{len(faces)} faces not in pain, each alone in its crop, {len(CONDITIONS)} conditions, "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"{'condition':22s} {'found':>5s} | {'uncalibrated: below mild':>24s} {'mean':>5s} {'max':>5s} | "
          f"{'calibrated: below mild':>22s} {'mean':>5s} {'max':>5s} | "
          f"{'peer plain PSPI: below mild':>27s} {'max':>5s} | pain 0.5 / 1 (own neutral)")
    results = {}
    for name, r in readings.items():
        unc, cal, plain = summary(r["uncalibrated"]), summary(r["calibrated"]), summary(r["plain"])
        results[name] = {"found": len(r["uncalibrated"]), "lost": r["lost"], "uncalibrated": unc,
                         "calibrated": cal, "plain_pspi": plain,
                         "pain_expression": {str(k): v for k, v in pain[name].items()}}
        pain_text = " / ".join("lost" if v is None else f"{v:.2f}" for v in pain[name].values())
        print(f"{name:22s} {len(r['uncalibrated']):5d} | {unc['share_below_mild']:24.0%} "
              f"{unc['score_mean']:5.2f} {unc['score_max']:5.2f} | {cal['share_below_mild']:22.0%} "
              f"{cal['score_mean']:5.2f} {cal['score_max']:5.2f} | "
              f"{plain['share_below_mild']:27.0%} {plain['score_max']:5.2f} | {pain_text}")
    print(json.dumps({"bench": "face_conditions", "faces": [n for n, _ in faces], "results": results,
                      "machine": {"cpu": cpu_name(), "threads": 1, "load_avg_1m": os.getloadavg()[0]}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
