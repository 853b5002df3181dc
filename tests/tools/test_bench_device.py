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
        assert 1.0 <= r["startup_s"] < 120  # includes the first 1 s hop
    assert result["results"]["painmon_no_face"]["face_frames_per_s"] == 0
    assert result["results"]["painmon"]["face_frames_per_s"] > 0
