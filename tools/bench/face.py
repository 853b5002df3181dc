"""Face path timing on 640x480 frames, next to MediaPipe's own FaceMesh solution.

    python -m tools.bench.face [--frames 200] [--data DIR_OR_VIDEO] [--peer-python PY] [--no-peer]

Frames: the demo photo (scikit-image's astronaut) in slow motion, or images/video from --data.
painmon runs with tracking on and off, one TFLite thread; the process is pinned to one CPU and
the peer subprocess inherits the pin. The peer is mediapipe 0.10.14's legacy
``mp.solutions.face_mesh`` (static_image_mode False = its tracking, True = detection every
frame), in its own virtualenv because its pins (numpy<2, protobuf<5) clash with ours: by
default ~/.cache/painmon/peer-venv, created on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from models.face import FaceEstimator
from sensors.camera import ImageFolderSource, VideoFileSource
from sensors.clock import SteppedClock
from sensors.emulated.photo import PhotoSource
from tools.bench import cpu_name

from device.app.fetch_models import fetch_models
from device.config.paths import default_model_dir

PEER_VENV = Path.home() / ".cache" / "painmon" / "peer-venv"
PEER_REQUIREMENTS = ["mediapipe==0.10.14", "numpy<2"]
STAGES = ("detect", "landmarks", "action_units", "emotion", "quality")

PEER_SCRIPT = r"""
import json, sys, time
import numpy as np
import mediapipe as mp
frames = np.load(sys.argv[1])
warmup = int(sys.argv[2])
out = {"version": mp.__version__}
for label, static in (("tracking", False), ("no_tracking", True)):
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=static, max_num_faces=1, refine_landmarks=False) as fm:
        for f in frames[:warmup]:
            fm.process(f)
        times, found = [], 0
        for f in frames:
            t = time.perf_counter()
            r = fm.process(f)
            times.append((time.perf_counter() - t) * 1e3)
            found += r.multi_face_landmarks is not None
    out[label] = {"times_ms": times, "found": found}
print(json.dumps(out))
"""


def load_frames(n: int, data: str | None) -> np.ndarray:
    clock = SteppedClock()
    if data is None:
        source = PhotoSource(clock=clock)
    elif Path(data).is_dir():
        source = ImageFolderSource(data, clock=clock, loop=True)
    else:
        source = VideoFileSource(data, clock=clock)
    frames = []
    with source:
        while len(frames) < n and (frame := source.read()) is not None:
            image = frame.image if frame.image.ndim == 3 else np.repeat(frame.image[:, :, None], 3, axis=2)
            frames.append(np.ascontiguousarray(image[:, :, :3]))
    if not frames:
        raise SystemExit(f"no frames from {data}")
    return np.stack(frames)


def _summary(times_ms: list[float]) -> dict:
    t = np.asarray(times_ms)
    return {"ms_median": round(float(np.median(t)), 3), "ms_p99": round(float(np.percentile(t, 99)), 3)}


def run_painmon(frames: np.ndarray, model_dir: Path, tracking: bool, warmup: int) -> dict:
    estimator = FaceEstimator(model_dir, num_threads=1, tracking=tracking)
    for i, image in enumerate(frames[:warmup]):
        estimator.process(image, t_ns=i)
    estimator.reset()
    totals, stages, found = [], {s: [] for s in STAGES}, 0
    for i, image in enumerate(frames):
        t = time.perf_counter()
        obs = estimator.observe(image, t_ns=i * 66_666_667)
        estimator.estimate(obs)
        totals.append((time.perf_counter() - t) * 1e3)
        found += obs.has_face
        for s in STAGES:
            stages[s].append(obs.timings_ms[s])
    out = _summary(totals)
    out["stages_ms_median"] = {s: round(float(np.median(v)), 3) for s, v in stages.items()}
    out["faces_found"] = found / len(frames)
    return out


def peer_python(explicit: str | None, setup: bool) -> Path:
    if explicit:
        return Path(explicit)
    py = PEER_VENV / "bin" / "python"
    if py.exists() or not setup:
        return py
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True, capture_output=True)
    proc = subprocess.run(["nice", str(py), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot install {' '.join(PEER_REQUIREMENTS)}: {proc.stderr.strip()[-300:]}")
    return py


def run_peer(frames: np.ndarray, python: Path, warmup: int) -> dict:
    if not python.exists():
        return {"error": f"peer interpreter {python} not found (mediapipe 0.10.14 venv)"}
    with tempfile.TemporaryDirectory(prefix="painmon-bench-") as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, frames)
        proc = subprocess.run([str(python), "-c", PEER_SCRIPT, str(path), str(warmup)],
                              capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"error": f"mediapipe peer failed: {proc.stderr.strip()[-300:]}"}
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    out = {"version": raw["version"]}
    for label in ("tracking", "no_tracking"):
        s = _summary(raw[label]["times_ms"])
        out[f"ms_median_{label}"], out[f"ms_p99_{label}"] = s["ms_median"], s["ms_p99"]
        out[f"faces_found_{label}"] = raw[label]["found"] / len(frames)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.face", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--data", default=None, help="image folder or video file (default: the demo photo)")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--peer-python", default=None, help="python of a venv with mediapipe==0.10.14")
    parser.add_argument("--no-peer", action="store_true", help="skip the mediapipe peer")
    parser.add_argument("--no-peer-setup", action="store_true", help="do not create the peer venv")
    args = parser.parse_args(argv)

    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    model_dir = args.model_dir or default_model_dir()
    fetch_models(model_dir)
    frames = load_frames(args.frames, args.data)
    warmup = min(args.warmup, len(frames))

    results: dict[str, dict] = {"painmon": {}}
    for tracking in (True, False):
        r = run_painmon(frames, model_dir, tracking, warmup)
        key = "tracking" if tracking else "no_tracking"
        for k, v in r.items():
            results["painmon"][f"{k}_{key}"] = v
    if args.no_peer:
        results["mediapipe_face_mesh"] = {"error": "skipped (--no-peer)"}
    else:
        try:
            peer_py = peer_python(args.peer_python, not args.no_peer_setup)
            results["mediapipe_face_mesh"] = run_peer(frames, peer_py, warmup)
        except Exception as exc:  # a peer that cannot run is reported, never dropped
            results["mediapipe_face_mesh"] = {"error": str(exc)}

    pm, peer = results["painmon"], results["mediapipe_face_mesh"]
    print(f"face path, {len(frames)} frames {frames.shape[2]}x{frames.shape[1]}, one thread, pinned to cpu {cpu}")
    print(f"{'system':28s} {'mode':12s} {'ms median':>10s} {'ms p99':>8s} {'faces':>6s}")
    for key in ("tracking", "no_tracking"):
        print(f"{'painmon':28s} {key:12s} {pm['ms_median_' + key]:10.2f} {pm['ms_p99_' + key]:8.2f} "
              f"{pm['faces_found_' + key]:6.2f}")
        stages = pm["stages_ms_median_" + key]
        print(f"{'  stages':28s} {key:12s} " + ", ".join(f"{s} {v:.2f}" for s, v in stages.items()))
    if "error" in peer:
        print(f"{'mediapipe FaceMesh':28s} error: {peer['error']}")
    else:
        for key in ("tracking", "no_tracking"):
            print(f"{'mediapipe FaceMesh ' + peer['version']:28s} {key:12s} "
                  f"{peer['ms_median_' + key]:10.2f} {peer['ms_p99_' + key]:8.2f} "
                  f"{peer['faces_found_' + key]:6.2f}")
        lm = pm["stages_ms_median_tracking"]["landmarks"]
        print(f"landmark stage (tracking): painmon {lm:.2f} ms vs mediapipe FaceMesh "
              f"{peer['ms_median_tracking']:.2f} ms per frame")
    print(json.dumps({
        "bench": "face",
        "data": args.data or "skimage.data.astronaut (moving)",
        "results": results,
        "machine": {"cpu": cpu_name(), "threads": 1, "pinned_cpu": cpu, "load_avg_1m": os.getloadavg()[0]},
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
