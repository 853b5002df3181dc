"""Footprint of the whole app: demo mode at real sensor rates and a 10 fps camera.

    python -m tools.bench.device [--seconds 60] [--fps 10] [--cpu 0]

Each system runs in its own process pinned to one CPU, publishing to a real mosquitto on
loopback (QoS 1), for ``--seconds`` of real time after start-up:

- ``painmon``: the app as ``painmon demo`` runs it: emulated chips (PPG 100 Hz, accelerometer
  50 Hz, ECG 250 Hz and EDA 8 Hz through the ADC) through the real drivers, the signal path,
  the physio model, the face path on the demo photo at ``--fps``, fusion, MQTT with the outbox;
- ``painmon_no_face`` (the peer): the same app with ``[face] enabled = false``, which shows
  what the face path costs.

Figures: peak RSS (``ru_maxrss``), CPU % of one core over the run, end-to-end latency from a
window's end (the hop time the vitals are computed for) to the broker's PUBACK of that hop's
``vitals`` and ``pain`` messages (p50, p99), and start-up: from spawning the process to the
PUBACK of its first estimate (hop_s = 1 s is part of it). Targets: RSS <= 150 MB,
p99 <= 50 ms, start-up <= 3 s. The JSON line comes last (../shared/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"rss_mb": 150.0, "latency_ms_p99": 50.0, "startup_s": 3.0}
MEASURED_TOPICS = ("/vitals", "/pain")


# -- the measured process ----------------------------------------------------------------------
def child(seconds: float, fps: float, face: bool, broker: str, state_dir: str) -> dict:
    import numpy as np

    from device.app import mqtt_output, parse_broker
    from device.config import default_config
    from device.mqtt import MqttLink
    from device.pipeline import Pipeline
    from sensors.clock import ScaledClock

    host, port = parse_broker(broker)
    config = default_config()
    config = config.model_copy(update={
        "hardware": "emulated", "state_dir": Path(state_dir),
        "face": config.face.model_copy(update={"enabled": face, "fps": fps, "camera": "photo"}),
        "mqtt": config.mqtt.model_copy(update={"host": host, "port": port, "ha_discovery": False}),
    })
    clock = ScaledClock(1.0)
    sent: dict[int, int] = {}  # mid -> window end (clock ns)
    acked: dict[int, int] = {}  # mid -> PUBACK (clock ns)
    first_ack_monotonic_ns: list[int] = []

    class TimedPipeline(Pipeline):
        hop_ns = 0

        def step(self, t_ns: int) -> dict:
            self.hop_ns = t_ns
            return super().step(t_ns)

    with MqttLink(config.mqtt, config.device_id) as link:
        link.wait_connected(10)
        pipeline = TimedPipeline(config, clock, [], face_calibrate_frames=round(2 * fps))
        publish_raw = link.publish_raw

        def timed_publish_raw(topic, body, **kwargs):
            info = publish_raw(topic, body, **kwargs)
            if topic.endswith(MEASURED_TOPICS):
                sent[info.mid] = pipeline.hop_ns
            return info

        def on_ack(mid: int) -> None:
            acked[mid] = clock.now_ns()
            if not first_ack_monotonic_ns and mid in sent:
                first_ack_monotonic_ns.append(time.monotonic_ns())

        link.publish_raw = timed_publish_raw  # measured here only: the app is unchanged
        link.ack_listeners.append(on_ack)
        output = mqtt_output(config, link, pipeline)
        usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        try:
            pipeline.run(seconds)
        finally:
            pipeline.stop()
            time.sleep(0.5)  # the last PUBACKs
            output.stop()
        usage1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    latencies = np.array([(acked[m] - t) / 1e6 for m, t in sent.items() if m in acked and t > 0])
    cpu_s = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_percent": round(100 * cpu_s / (wall1 - wall0), 1),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2) if latencies.size else None,
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 2) if latencies.size else None,
        "messages_measured": int(latencies.size),
        "first_ack_monotonic_ns": first_ack_monotonic_ns[0] if first_ack_monotonic_ns else None,
        "face_frames_per_s": round(pipeline.face.frames / seconds, 2) if pipeline.face else 0.0,
        "hops": pipeline.hops,
    }


# -- the runner ------------------------------------------------------------------------------
def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(binary, os.X_OK):
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def measure(name: str, *, face: bool, seconds: float, fps: float, broker: str, cpu: int,
            workdir: Path) -> dict:
    state = workdir / name
    state.mkdir()
    cmd = [sys.executable, "-m", "tools.bench.device", "--child", "--seconds", str(seconds),
           "--fps", str(fps), "--broker", broker, "--state-dir", str(state)]
    if not face:
        cmd.append("--no-face")
    spawned_ns = time.monotonic_ns()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=seconds + 180,
                          preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
                          cwd=Path(__file__).resolve().parents[2])
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    first = result.pop("first_ack_monotonic_ns")
    result["startup_s"] = round((first - spawned_ns) / 1e9, 2) if first else None
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--cpu", type=int, default=0, help="the one CPU each run is pinned to")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-face", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--broker", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.seconds, args.fps, not args.no_face, args.broker,
                               args.state_dir)))
        return 0

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="painmon-bench-") as tmp:
        broker_proc, port = start_mosquitto(Path(tmp))
        try:
            for name, face in (("painmon", True), ("painmon_no_face", False)):
                results[name] = measure(name, face=face, seconds=args.seconds, fps=args.fps,
                                        broker=f"127.0.0.1:{port}", cpu=args.cpu, workdir=Path(tmp))
        finally:
            broker_proc.terminate()
            broker_proc.wait(10)

    print(f"painmon footprint: demo mode, {args.seconds:g} s, camera {args.fps:g} fps, "
          f"one CPU (#{args.cpu}), mosquitto on loopback, QoS 1")
    keys = ("rss_mb", "cpu_percent", "latency_ms_p50", "latency_ms_p99", "startup_s",
            "face_frames_per_s", "messages_measured")
    print(f"{'system':18}" + "".join(f"{k:>19}" for k in keys))
    for name, r in results.items():
        if "error" in r:
            print(f"{name:18} error: {r['error']}")
            continue
        print(f"{name:18}" + "".join(f"{r.get(k)!s:>19}" for k in keys))
    print("targets: " + ", ".join(f"{k} <= {v:g}" for k, v in TARGETS.items()))
    print(json.dumps({
        "bench": "device", "data": None,
        "results": results,
        "peer": "painmon_no_face: the same app with the face path off",
        "targets": TARGETS,
        "seconds": args.seconds, "fps": args.fps,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1,
                    "python": platform.python_version()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
