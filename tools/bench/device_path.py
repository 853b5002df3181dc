"""What a Pi will carry: the device's own path, without the emulators, beside the demo.

    python -m tools.bench.device_path [--seconds 60] [--fps 10] [--recording PATH] [--cpu 0]

The demo's footprint (``tools.bench.device``) includes the emulated board: the physiology
simulator and the register-level chips answer every bus transaction in Python. A device has
none of that. Here each system runs in its own process pinned to one CPU, at 1x real time, for
``--seconds`` after start-up, publishing to a real mosquitto on loopback:

- ``device_path``: recorded raw blocks (any recording ``painmon replay`` reads; by default one
  made first by the demo with ``--record``) through the device's readers, queue, signal path,
  physio model, fusion and MQTT, and a 10 fps video file (the demo photo in motion, written
  first with OpenCV) through the face path: everything a device does, minus its bus reads;
- ``device_path_no_face``: the same without the face;
- ``demo`` (the peer): ``painmon demo``'s monitor, emulated chips and the demo photo.

Figures: CPU % of one core over the run (user + system time / wall time) and peak RSS
(``ru_maxrss``), with hops and face frames processed. Goal: the device path at <= 10 % of one
core and <= 100 MB. The JSON line comes last (../shared/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from tools.bench.device import rss_now_mb, start_mosquitto

GOALS = {"cpu_percent": 10.0, "rss_mb": 100.0}
REPO = Path(__file__).resolve().parents[2]


# -- inputs ------------------------------------------------------------------------------------
def make_recording(directory: Path, seconds: float, broker: str) -> Path:
    """A painmon recording of the demo's board (raw channels, EDF+), face off."""
    config = directory / "record.toml"
    config.write_text(f'state_dir = "{directory / "state"}"\n[face]\nenabled = false\n')
    out = directory / "recording"
    subprocess.run([sys.executable, "-m", "device.cli", "demo", "--config", str(config),
                    "--broker", broker, "--seconds", str(seconds), "--speed", "2",
                    "--record", str(out)], check=True, cwd=REPO, capture_output=True,
                   timeout=seconds * 4 + 120)
    return out


def make_video(path: Path, seconds: float, fps: float) -> Path:
    """The demo photo drifting and breathing, ``seconds`` long at ``fps``, as MJPG in AVI."""
    import cv2

    from sensors.clock import SteppedClock
    from sensors.emulated.photo import PhotoSource

    clock = SteppedClock()
    source = PhotoSource(rate_hz=fps, clock=clock)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps,
                             (source.width, source.height))
    try:
        for _ in range(round(seconds * fps)):
            frame = source.read()
            writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


# -- the measured process ------------------------------------------------------------------------
def child(kind: str, seconds: float, fps: float, recording: str, video: str, broker: str,
          state_dir: str) -> dict:
    from sensors.clock import ScaledClock

    from device.app.broker_choice import parse_broker
    from device.app.demo import demo_wiring
    from device.app.device import connect, freeze_startup_heap
    from device.app.replay import ReplayClock, first_hop_ns, replay_board
    from device.app.root import build_monitor
    from device.comms.link import MqttLink
    from device.config import default_config
    from device.recording.readers import open_recording

    host, port = parse_broker(broker)
    config = default_config()
    face = kind != "device_path_no_face"
    camera = "photo" if kind == "demo" else video
    config = config.model_copy(update={
        "hardware": "emulated" if kind == "demo" else "real", "state_dir": Path(state_dir),
        "face": config.face.model_copy(update={"enabled": face, "fps": fps, "camera": camera}),
        "mqtt": config.mqtt.model_copy(update={"host": host, "port": port,
                                               "ha_discovery": False})})
    faces = {"hops": 0, "scored": 0}

    def count_faces(topic: str, message: dict) -> None:  # the face path really sees a face
        if topic == "face":
            faces["hops"] += 1
            faces["scored"] += message.get("score") is not None

    with ExitStack() as stack:
        link = stack.enter_context(MqttLink(config.mqtt, config.device_id))
        link.wait_connected(10)
        if kind == "demo":
            clock = ScaledClock(1.0)
            monitor = build_monitor(demo_wiring(config), clock, [count_faces],
                                    face_calibrate_frames=10)
        else:
            rec = open_recording(recording)
            hop_ns = round(config.processing.hop_s * 1e9)
            first = first_hop_ns(rec)
            start_ns = first - hop_ns if first is not None else rec.start_ns
            clock = ReplayClock(1.0, rec.start_ns)
            monitor = build_monitor(config, clock, [count_faces], board=replay_board(rec, clock),
                                    face_calibrate_frames=10)
            clock.rebase(start_ns)
        connect(monitor, link, stack, recorder=False)
        freeze_startup_heap()
        usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        try:
            monitor.pipeline.run(seconds)
        finally:
            usage1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            monitor.pipeline.stop()
    cpu_s = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    face_worker = monitor.face
    return {"cpu_percent": round(100 * cpu_s / (wall1 - wall0), 1),
            "rss_mb": round(usage1.ru_maxrss / 1024, 1), "rss_mb_end": rss_now_mb(),
            "hops": monitor.pipeline.hops,
            "face_frames_per_s": round(face_worker.frames / seconds, 2) if face_worker else 0.0,
            "face_hops_scored": round(faces["scored"] / max(1, faces["hops"]), 2)}


def measure(kind: str, args, recording: Path, video: Path, broker: str, workdir: Path) -> dict:
    state = workdir / f"state-{kind}"
    state.mkdir()
    cmd = [sys.executable, "-m", "tools.bench.device_path", "--child", kind,
           "--seconds", str(args.seconds), "--fps", str(args.fps), "--recording", str(recording),
           "--video", str(video), "--broker", broker, "--state-dir", str(state)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                          timeout=args.seconds + 180, cwd=REPO,
                          preexec_fn=lambda: os.sched_setaffinity(0, {args.cpu}))
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--cpu", type=int, default=0, help="the one CPU each run is pinned to")
    parser.add_argument("--recording", help="a recording replay reads (default: made by the demo)")
    parser.add_argument("--data", default=None, help="unused: the inputs are made here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--broker", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.seconds, args.fps, args.recording, args.video,
                               args.broker, args.state_dir)))
        return 0

    results: dict[str, dict] = {}
    load_before = os.getloadavg()  # a shared machine: say how busy it was
    with tempfile.TemporaryDirectory(prefix="painmon-bench-") as tmp:
        work = Path(tmp)
        broker_proc, port = start_mosquitto(work)
        broker = f"127.0.0.1:{port}"
        try:
            recording = (Path(args.recording) if args.recording
                         else make_recording(work, args.seconds + 15, broker))
            video = make_video(work / "camera.avi", args.seconds + 15, args.fps)
            for kind in ("device_path", "device_path_no_face", "demo"):
                results[kind] = measure(kind, args, recording, video, broker, work)
        finally:
            broker_proc.terminate()
            broker_proc.wait(10)

    print(f"painmon device path: {args.seconds:g} s at 1x, camera {args.fps:g} fps video file, "
          f"one CPU (#{args.cpu}), mosquitto on loopback")
    keys = ("cpu_percent", "rss_mb", "rss_mb_end", "hops", "face_frames_per_s", "face_hops_scored")
    print(f"{'system':22}" + "".join(f"{k:>18}" for k in keys))
    for name, r in results.items():
        line = (f" error: {r['error']}" if "error" in r
                else "".join(f"{r.get(k)!s:>18}" for k in keys))
        print(f"{name:22}{line}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("goals for device_path: " + ", ".join(f"{k} <= {v:g}" for k, v in GOALS.items()))
    print(json.dumps({
        "bench": "device_path", "data": args.recording,
        "results": results, "peer": "demo: the same monitor on the emulated board",
        "goals": GOALS, "seconds": args.seconds, "fps": args.fps,
        "load_average": [round(x, 2) for x in load_before] + [round(x, 2) for x in os.getloadavg()],
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1,
                    "python": platform.python_version()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
