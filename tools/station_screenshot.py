"""The README's screenshot of the ward station, taken in headless Chromium.

    python -m tools.station_screenshot [--out device/station/docs/ward.png]

A mosquitto on a free loopback port, ``painmon station`` on SQLite, ``painmon demo`` (the bed
``painmon-demo``) and a few simulated beds (one in pain with its alarm raised, one that
vanished), then a log-in and a screenshot of the ward overview.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.bench.station_load import USER, _healthy, free_port, start_mosquitto, wait
from tools.bench.ward_sim import SimulatedBed

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "device/station/docs/ward.png"))
    parser.add_argument("--settle", type=float, default=40.0,
                        help="seconds of demo before the screenshot")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="station-shot-"))
    broker, port = start_mosquitto(tmp)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    web = free_port()
    config = tmp / "station.toml"
    config.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nkeepalive_s = 5\n\n'
                      f'[station]\nstate_dir = "{tmp}"\nlisten = "127.0.0.1:{web}"\n'
                      "secure_cookies = false\nrefresh_s = 0.5\n")
    cli = [sys.executable, "-m", "device.cli"]
    subprocess.run([*cli, "station", "adduser", USER[0], "--config", str(config)],
                   input=USER[1] + "\n", text=True, check=True, env=env, capture_output=True)
    procs = [subprocess.Popen([*cli, "station", "--config", str(config)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen([*cli, "demo", "--broker", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    beds = []
    try:
        url = f"http://127.0.0.1:{web}"
        wait(lambda: _healthy(url), 60, "the station")
        scores = {"bed-01": 1.2, "bed-02": 7.4, "bed-03": 3.9, "bed-04": 0.2, "bed-05": 2.5}
        beds = [SimulatedBed("127.0.0.1", port, name, seed=i, keepalive_s=1).start()
                for i, name in enumerate(scores)]
        t_end = time.monotonic() + args.settle
        while time.monotonic() < t_end:
            now = time.time()
            for bed in beds:
                if bed.device_id != "bed-05" or time.monotonic() < t_end - args.settle + 5:
                    bed.hop(score=round(scores[bed.device_id] + 0.6 * ((now / 7) % 1), 1))
            if beds[1].book.get("pain_high", "pain") is None:
                beds[1].raise_pain_alarm(7.4)
            if time.monotonic() > t_end - args.settle + 5 and beds[4].client.is_connected():
                beds[4].vanish()
            time.sleep(1.0)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1180, "height": 560})
            page.goto(url + "/")
            page.fill("input[name=username]", USER[0])
            page.fill("input[name=password]", USER[1])
            page.click("button[type=submit]")
            page.wait_for_selector("#bed-painmon-demo")
            page.wait_for_timeout(1500)
            page.screenshot(path=args.out)
            browser.close()
        print(args.out)
    finally:
        for bed in beds[:4]:
            bed.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        broker.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
