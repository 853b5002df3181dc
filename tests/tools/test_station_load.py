"""Smoke test of the station load benchmark: a few beds, a few seconds, nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_station_load_runs_and_loses_nothing():
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench.station_load", "--beds", "3", "--seconds", "2",
         "--warmup", "1"], cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    last = json.loads(done.stdout.strip().splitlines()[-1])
    station = last["results"]["painmon_station"]
    assert last["bench"] == "station_load" and "paho_subscriber" in last["results"]
    assert station["lost"] == 0 and station["stored_per_s"] > 0
    assert station["ingest_lag_ms_p50"] is not None and station["station_rss_mb"][0] > 0
