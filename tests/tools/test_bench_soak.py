"""Smoke test of the soak benchmark on a tiny run: it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_soak_bench_tiny_run_prints_the_json_line_last():
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench.soak", "--minutes", "0.3", "--sample-s", "2",
         "--warmup-min", "0.1"], cwd=REPO, capture_output=True, text=True, timeout=300,
        check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bench"] == "soak"
    assert set(result["results"]) == {"painmon", "painmon_no_face"}
    for name, r in result["results"].items():
        assert "error" not in r, (name, r)
        assert 20 < r["rss_mb_end"] < 2000 and r["samples"] >= 4
        assert r["fds_end"] >= 3 and r["threads_max"] >= 2
        assert r["stop_s"] is not None and r["stop_s"] < 30  # SIGTERM ended it
        series = result["series"][name]
        assert [s["t_s"] for s in series] == sorted(s["t_s"] for s in series)
    assert len(result["machine"]["loadavg_before"]) == 3
