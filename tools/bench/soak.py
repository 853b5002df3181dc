"""Soak: does ``painmon demo`` hold its memory and file descriptors over a long run?

    python -m tools.bench.soak [--minutes 10] [--speed 8] [--sample-s 10] [--warmup-min 2]

Runs, side by side for ``--minutes`` of wall time, each publishing to its own real mosquitto
on loopback (both demos have the same device id) with its own state directory:

- ``painmon``: ``painmon demo --speed S`` exactly as an operator starts it: the emulated board
  with its data-ready lines on mock pins, the face path on the demo photo (the photo grimaces
  with the simulated pain), the physio model, fusion, alarms, MQTT with the outbox;
- ``painmon_no_face`` (the peer): the same demo with ``[face] enabled = false``, which shows
  what the face/camera path adds.

Every ``--sample-s`` it reads each process's RSS, open file descriptors and threads from
``/proc``. Figures: RSS at the end of the warm-up and at the end, the growth between them
(``rss_growth_mb``, target <= 5 MB), the least-squares slope after warm-up
(``rss_slope_mb_per_min``), the fd count's growth, and how often the loop fell behind (a sign
of a loaded machine), and the frames the face path analysed (``face_frames``, from the
``face`` messages on the broker: on a starved machine it analyses fewer). The machine's load
average is reported: on a shared machine the demo at speed 8 may not keep up. The JSON line
comes last (../shared/BENCHMARKS.md). SIGTERM ends each run; how long it took to exit is
reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from tools.bench.device import start_mosquitto

REPO = Path(__file__).resolve().parents[2]
TARGET_GROWTH_MB = 5.0

#: The peer: the demo as ``painmon demo`` builds it, with the face path off.
NO_FACE = """
import sys
import device.app.demo as demo
made = demo.demo_config
def without_face(*args, **kwargs):
    config = made(*args, **kwargs)
    return config.model_copy(update={"face": config.face.model_copy(update={"enabled": False})})
demo.demo_config = without_face
sys.exit(demo.run_demo(broker=sys.argv[1], speed=float(sys.argv[2]), quiet=True))
"""


class FaceFrames:
    """The newest ``camera.frames`` in the ``face`` messages on a broker."""

    def __init__(self, port: int) -> None:
        self.frames = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("painmon/+/face")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, message) -> None:
        try:
            frames = int(json.loads(message.payload)["camera"]["frames"])
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self.frames = max(self.frames, frames)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def proc_sample(pid: int) -> dict | None:
    """RSS (MB), open fds, threads and CPU seconds of ``pid`` from /proc; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    ticks = os.sysconf("SC_CLK_TCK")
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "fds": fds,
            "threads": int(fields["Threads"]),
            "cpu_s": round((int(stat[11]) + int(stat[12])) / ticks, 1)}


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) in value per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return round(60 * sum((t - mt) * (v - mv) for t, v in points) / var, 3)


def summarise(samples: list[dict], warmup_s: float) -> dict:
    after = [s for s in samples if s["t_s"] >= warmup_s]
    if not after:
        return {"error": "no sample after the warm-up"}
    first, last = after[0], after[-1]
    return {
        "rss_mb_start": samples[0]["rss_mb"],
        "rss_mb_after_warmup": first["rss_mb"],
        "rss_mb_end": last["rss_mb"],
        "rss_mb_max": max(s["rss_mb"] for s in samples),
        "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
        "rss_slope_mb_per_min": slope_per_min([(s["t_s"], s["rss_mb"]) for s in after]),
        "fds_after_warmup": first["fds"], "fds_end": last["fds"],
        "fds_growth": last["fds"] - first["fds"],
        "threads_max": max(s["threads"] for s in samples),
        "cpu_percent": round(100 * (last["cpu_s"] - first["cpu_s"])
                             / max(1e-9, last["t_s"] - first["t_s"]), 1),
        "samples": len(samples),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall time of the run")
    parser.add_argument("--speed", type=float, default=8.0, help="the demo's clock speed")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup-min", type=float, default=2.0,
                        help="minutes left out of the growth (models loading, caches filling)")
    parser.add_argument("--no-peer", action="store_true", help="run painmon only")
    args = parser.parse_args(argv)
    run_s, warmup_s = args.minutes * 60, args.warmup_min * 60
    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    series: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="painmon-soak-") as tmp:
        names = ["painmon"] + ([] if args.no_peer else ["painmon_no_face"])
        brokers, watches, commands = [], {}, {}
        for name in names:
            (Path(tmp) / name).mkdir()
            broker_proc, port = start_mosquitto(Path(tmp) / name)
            brokers.append(broker_proc)
            watches[name] = FaceFrames(port)
            broker = f"127.0.0.1:{port}"
            commands[name] = ([sys.executable, "-m", "device.cli", "demo", "--speed",
                               f"{args.speed:g}", "--broker", broker] if name == "painmon" else
                              [sys.executable, "-c", NO_FACE, broker, f"{args.speed:g}"])
        procs: dict[str, subprocess.Popen] = {}
        logs: dict[str, Path] = {}
        try:
            for name, command in commands.items():
                state = Path(tmp) / name / "state"
                state.mkdir()
                logs[name] = Path(tmp) / f"{name}.log"
                env = {**os.environ, "PYTHONPATH": str(REPO), "STATE_DIRECTORY": str(state)}
                procs[name] = subprocess.Popen(command, cwd=REPO, env=env,
                                               stdout=subprocess.DEVNULL,
                                               stderr=open(logs[name], "wb"))
                series[name] = []
            t0 = time.monotonic()
            while (now := time.monotonic() - t0) < run_s:
                for name, proc in procs.items():
                    sample = proc_sample(proc.pid) if proc.poll() is None else None
                    if sample is not None:
                        series[name].append({"t_s": round(now, 1), **sample})
                time.sleep(max(0.0, min(args.sample_s, run_s - (time.monotonic() - t0))))
            for name, proc in procs.items():
                sample = proc_sample(proc.pid) if proc.poll() is None else None
                if sample is not None:
                    series[name].append({"t_s": round(time.monotonic() - t0, 1), **sample})
            for name, proc in procs.items():
                if proc.poll() is not None:
                    results[name] = {"error": f"exited early with {proc.returncode}: "
                                              + logs[name].read_text(errors="replace")[-500:]}
                    continue
                sent = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                    stop_s = round(time.monotonic() - sent, 2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    stop_s = None
                log = logs[name].read_text(errors="replace")
                results[name] = {**summarise(series[name], warmup_s), "stop_s": stop_s,
                                 "fell_behind": log.count("processing fell behind"),
                                 "face_frames": watches[name].frames}
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
            for watch in watches.values():
                watch.close()
            for broker_proc in brokers:
                broker_proc.terminate()
                broker_proc.wait(10)
    load_after = os.getloadavg()
    print(f"soak: painmon demo --speed {args.speed:g}, {args.minutes:g} min of wall time, "
          f"warm-up {args.warmup_min:g} min; load average {load_before[0]:.1f} -> "
          f"{load_after[0]:.1f} on {os.cpu_count()} CPUs")
    for name, samples in series.items():
        print(f"{name}: RSS MB over time " + " ".join(
            f"{s['t_s'] / 60:.1f}m:{s['rss_mb']}" for s in samples[:: max(1, len(samples) // 12)]))
    keys = ("rss_mb_after_warmup", "rss_mb_end", "rss_growth_mb", "rss_slope_mb_per_min",
            "fds_after_warmup", "fds_end", "threads_max", "cpu_percent", "fell_behind", "stop_s",
            "face_frames")
    print(f"{'':16}" + "".join(f"{k:>22}" for k in keys))
    for name, r in results.items():
        print(f"{name:16}" + "".join(f"{str(r.get(k, r.get('error', '')))[:21]:>22}" for k in keys))
    print(json.dumps({
        "bench": "soak", "data": None,
        "settings": {"minutes": args.minutes, "speed": args.speed, "sample_s": args.sample_s,
                     "warmup_min": args.warmup_min, "target_growth_mb": TARGET_GROWTH_MB},
        "results": results,
        "series": series,
        "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after],
                    "python": platform.python_version()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
