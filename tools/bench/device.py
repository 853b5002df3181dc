"""Footprint of the whole app: demo mode at real sensor rates and a 10 fps camera.

    python -m tools.bench.device [--seconds 60] [--fps 10] [--cpu 0]

Each system runs in its own process pinned to one CPU, publishing to a real mosquitto on
loopback (QoS 1, ``set_tcp_nodelay true``), for ``--seconds`` of real time after start-up:

- ``painmon``: the app as ``painmon demo`` runs it: emulated chips (PPG 100 Hz, accelerometer
  50 Hz, ECG 250 Hz and EDA 8 Hz through the ADC) through the real drivers, the signal path,
  the physio model, the face path on the demo photo at ``--fps``, fusion, MQTT with the outbox;
- ``painmon_no_face`` (the peer): the same app with ``[face] enabled = false``, which shows
  what the face path costs.

Figures: peak RSS (``ru_maxrss``), CPU % of one core over the run, end-to-end latency from a
window's end (the hop time the vitals are computed for) to the broker's PUBACK of that hop's
``vitals`` and ``pain`` messages (p50, p99), and start-up: from spawning the process to the
PUBACK of its first estimate, the first ``pain`` message with a score (the first window ends
hop_s = 1 s after the loop starts, by design, and is part of it). Targets: RSS <= 150 MB,
p99 <= 50 ms, start-up <= 3 s. The JSON line comes last (../shared/BENCHMARKS.md).

Also reported, to show where the figures come from: the RSS at each start-up phase
(``rss_mb_at``), the time of each phase since the spawn (``startup_phases_s``), and the
latency split into the loop's wake-up, the hop's work, the hand-over to paho (for ``pain``
that includes the durable outbox write) and paho + broker to the PUBACK (``latency_parts_ms``).
"""

from __future__ import annotations

import argparse
import gc
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
def rss_now_mb() -> float | None:
    """Resident set size now (Linux ``/proc``); None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def percentiles_ms(values_ns: list[int]) -> dict[str, float | None]:
    import numpy as np

    ms = np.asarray(values_ns, dtype=float) / 1e6
    if not ms.size:
        return {"p50": None, "p99": None}
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p99": round(float(np.percentile(ms, 99)), 2)}


def child(seconds: float, fps: float, face: bool, broker: str, state_dir: str) -> dict:
    # Phases of start-up on the system-wide monotonic clock (the parent stamped the spawn).
    phases_ns: dict[str, int] = {"interpreter": time.monotonic_ns()}
    rss_at: dict[str, float | None] = {"interpreter": rss_now_mb()}

    def mark(name: str) -> None:
        if name not in phases_ns:
            phases_ns[name] = time.monotonic_ns()
            rss_at[name] = rss_now_mb()


    from sensors.clock import ScaledClock

    from device.app.broker_choice import parse_broker
    from device.app.demo import DEMO_FACE_CALIBRATION_S, demo_wiring
    from device.app.device import freeze_startup_heap, mqtt_output
    from device.app.root import build_monitor
    from device.comms.link import MqttLink
    from device.config import default_config

    mark("imports")
    host, port = parse_broker(broker)
    config = demo_wiring(default_config())  # INT and ALERT/RDY on mock pins, as in the demo
    config = config.model_copy(update={
        "hardware": "emulated", "state_dir": Path(state_dir),
        "face": config.face.model_copy(update={"enabled": face, "fps": fps, "camera": "photo"}),
        "mqtt": config.mqtt.model_copy(update={"host": host, "port": port, "ha_discovery": False}),
    })
    # ScaledClock(1.0) runs on time.monotonic_ns: its readings convert to the phases' clock.
    clock = ScaledClock(1.0)
    clock_to_monotonic_ns = time.monotonic_ns() - clock.now_ns()
    sent: dict[int, tuple[str, int, int]] = {}  # mid -> (topic, window end, handed to paho)
    acked: dict[int, int] = {}  # mid -> PUBACK (clock ns)
    hops: list[tuple[int, int, int]] = []  # (window end, step start, step end), clock ns
    first_estimate_mids: set[int] = set()

    hop_ns = [0]  # the window end of the hop being processed

    def timed(step):
        def timed_step(t_ns: int) -> dict:
            started = clock.now_ns()
            mark("first_hop")
            hop_ns[0] = t_ns
            try:
                return step(t_ns)
            finally:
                hops.append((t_ns, started, clock.now_ns()))
        return timed_step

    with MqttLink(config.mqtt, config.device_id) as link:
        link.wait_connected(10)
        mark("connected")
        monitor = build_monitor(config, clock, face_calibrate_frames=round(DEMO_FACE_CALIBRATION_S * fps))
        pipeline = monitor.pipeline
        pipeline.step = timed(pipeline.step)  # measured here only: the app is unchanged
        mark("pipeline")
        publish_raw = link.publish_raw

        def timed_publish_raw(topic, body, **kwargs):
            info = publish_raw(topic, body, **kwargs)
            if topic.endswith(MEASURED_TOPICS):
                sent[info.mid] = (topic.rsplit("/", 1)[-1], hop_ns[0], clock.now_ns())
                # The first estimate: the first pain message with a score.
                if not first_estimate_mids and topic.endswith("/pain") \
                        and json.loads(body).get("score") is not None:
                    first_estimate_mids.add(info.mid)
            return info

        def on_ack(mid: int) -> None:
            acked[mid] = clock.now_ns()
            if mid in sent:
                mark("first_ack")
            if mid in first_estimate_mids:
                mark("first_estimate")

        gc_pauses: dict[int, list[int]] = {0: [], 1: [], 2: []}
        gc_started: list[int] = [0]

        def on_gc(phase: str, info: dict) -> None:  # the collector's pauses stop every thread
            if phase == "start":
                gc_started[0] = time.perf_counter_ns()
            else:
                gc_pauses[info["generation"]].append(time.perf_counter_ns() - gc_started[0])

        gc.callbacks.append(on_gc)
        link.publish_raw = timed_publish_raw  # measured here only: the app is unchanged
        link.ack_listeners.append(on_ack)
        output = mqtt_output(monitor, link)
        freeze_startup_heap()  # as `painmon run` and `painmon demo` do before their loop
        mark("wired")
        usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        try:
            pipeline.run(seconds)
        finally:
            pipeline.stop()
            time.sleep(0.5)  # the last PUBACKs
            output.stop()
        usage1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    mark("end")
    measured = {m: v for m, v in sent.items() if m in acked and v[1] > 0}
    latencies = [acked[m] - t for m, (_, t, _) in measured.items()]
    cpu_s = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    total = percentiles_ms(latencies)
    # Where the window-end -> PUBACK time goes: the loop waking late, the hop's own work up to
    # the hand-over to paho (for pain: the outbox write and its sender thread too), and paho's
    # network thread + the broker until the PUBACK is read.
    parts: dict[str, dict] = {"wake": percentiles_ms([s - t for t, s, _ in hops[1:]]),
                              "hop": percentiles_ms([e - s for _, s, e in hops[1:]])}
    for kind in ("vitals", "pain"):
        mine = [(m, t, h) for m, (k, t, h) in measured.items() if k == kind]
        parts[f"{kind}_to_paho"] = percentiles_ms([h - t for _, t, h in mine])
        parts[f"{kind}_paho_to_puback"] = percentiles_ms([acked[m] - h for m, _, h in mine])
        parts[f"{kind}_total"] = percentiles_ms([acked[m] - t for m, t, _ in mine])
    first_hop_window_ns = hops[0][0] + clock_to_monotonic_ns if hops else None
    return {
        # The kernel's high-water mark; a phase sample rounded up can sit 0.1 MB above it.
        "rss_mb": max([round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)]
                      + [v for v in rss_at.values() if v is not None]),
        "rss_mb_at": rss_at,
        "cpu_percent": round(100 * cpu_s / (wall1 - wall0), 1),
        "latency_ms_p50": total["p50"],
        "latency_ms_p99": total["p99"],
        "latency_parts_ms": parts,
        "messages_measured": len(latencies),
        "gc_pauses": {f"gen{g}": {"count": len(v), "ms_max": round(max(v) / 1e6, 2) if v else None}
                      for g, v in gc_pauses.items()},
        "phases_monotonic_ns": {**phases_ns, "first_window_end": first_hop_window_ns},
        "face_frames_per_s": round(pipeline.face.frames / seconds, 2) if pipeline.face else 0.0,
        "face_frames_dropped": (pipeline.face.source.frames_dropped
                                if pipeline.face and pipeline.face.source else 0),
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
    # set_tcp_nodelay: with Nagle's algorithm on, mosquitto holds a PUBACK that follows another
    # one until the client's delayed ACK (~40 ms on Linux): p99 would measure the broker's
    # socket option, not the device. Deployments should set it too.
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "set_tcp_nodelay true\n"
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
    phases = result.pop("phases_monotonic_ns")

    def since_spawn(name: str) -> float | None:
        return round((phases[name] - spawned_ns) / 1e9, 3) if phases.get(name) else None

    result["startup_s"] = since_spawn("first_estimate")
    result["startup_first_puback_s"] = since_spawn("first_ack")
    # The first window ends hop_s after the loop starts, by design: the rest is start-up work.
    result["startup_phases_s"] = {name: since_spawn(name) for name in (
        "interpreter", "imports", "connected", "pipeline", "wired", "first_window_end",
        "first_hop", "first_ack", "first_estimate")}
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
    load_before = os.getloadavg()  # a shared machine: say how busy it was
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
    for name, r in results.items():
        if "error" in r:
            continue
        print(f"{name}: RSS (MB) at " + ", ".join(f"{k} {v}" for k, v in r["rss_mb_at"].items()))
        print(f"{name}: start-up phases (s since spawn) " + ", ".join(
            f"{k} {v}" for k, v in r["startup_phases_s"].items()))
        print(f"{name}: garbage collector pauses " + ", ".join(
            f"{k} {v['count']}x max {v['ms_max']} ms" for k, v in r["gc_pauses"].items()))
        print(f"{name}: latency parts (ms p50/p99) " + ", ".join(
            f"{k} {v['p50']}/{v['p99']}" for k, v in r["latency_parts_ms"].items()))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("targets: " + ", ".join(f"{k} <= {v:g}" for k, v in TARGETS.items()))
    print(json.dumps({
        "bench": "device", "data": None,
        "results": results,
        "peer": "painmon_no_face: the same app with the face path off",
        "targets": TARGETS,
        "seconds": args.seconds, "fps": args.fps,
        "load_average": [round(x, 2) for x in load_before] + [round(x, 2) for x in os.getloadavg()],
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1,
                    "python": platform.python_version()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
