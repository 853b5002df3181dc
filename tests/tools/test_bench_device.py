"""Smoke test of the footprint benchmark on a tiny run: it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_device_bench_tiny_run_prints_the_json_line_last():
    proc = subprocess.run(check=False, args=[sys.executable, "-m", "tools.bench.device", "--seconds", "3"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bench"] == "device"
    assert set(result["results"]) == {"painmon", "painmon_no_face"}
    for name, r in result["results"].items():
        assert "error" not in r, (name, r)
        assert 20 < r["rss_mb"] < 2000
        assert r["messages_measured"] >= 2
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p99"] < 5000
        phases = r["startup_phases_s"]
        # In order from the spawn; the first window ends one hop (1 s) after the app is wired.
        order = [phases[k] for k in ("interpreter", "imports", "connected", "pipeline", "wired",
                                     "first_window_end", "first_hop", "first_ack")]
        assert all(a <= b for a, b in zip(order, order[1:])), phases
        assert phases["first_window_end"] - phases["wired"] >= 0.9
        assert r["startup_first_puback_s"] == phases["first_ack"]
        if r["startup_s"] is not None:  # a pain estimate with a score was acknowledged
            assert phases["first_ack"] <= r["startup_s"] < 120
        assert all(v is None or 5 < v <= r["rss_mb"] for v in r["rss_mb_at"].values())
        parts = r["latency_parts_ms"]
        assert parts["vitals_total"]["p50"] is not None
        assert parts["vitals_to_paho"]["p50"] <= parts["vitals_total"]["p50"] + 1e-6
    painmon = result["results"]["painmon"]
    # A 3 s run may end before the first scored pain estimate; the first PUBACK is always there.
    assert 1.0 <= painmon["startup_first_puback_s"] < 120
    assert result["results"]["painmon_no_face"]["face_frames_per_s"] == 0
    assert painmon["face_frames_per_s"] > 0
    assert len(result["load_average"]) == 6


def test_device_path_bench_tiny_run_prints_the_json_line_last(face_model_dir):
    proc = subprocess.run(check=False, args=[sys.executable, "-m", "tools.bench.device_path",
                                             "--seconds", "4"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bench"] == "device_path"
    assert set(result["results"]) == {"device_path", "device_path_no_face", "demo"}
    for name, r in result["results"].items():
        assert "error" not in r, (name, r)
        assert 20 < r["rss_mb"] < 2000 and 0 < r["cpu_percent"] < 200
        assert r["hops"] >= 3
    assert result["results"]["device_path"]["face_frames_per_s"] > 0  # the video reached the face
    assert result["results"]["device_path_no_face"]["face_frames_per_s"] == 0
