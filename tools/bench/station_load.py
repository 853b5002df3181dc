"""The ward station under a ward's load: simulated beds at their real rates on one mosquitto.

    python -m tools.bench.station_load [--beds 200] [--seconds 60] [--db sqlite|postgresql]
                                       [--stations 1] [--browser]

Each bed (``tools/bench/ward_sim.py``) is one MQTT client publishing what a painmon device
does, once a second: vitals, face, pain and health (retained), alarm events and the retained
alarm list when its pain alarm rises or clears (its score follows a slow wave; a quarter of
the beds cross the alarm threshold). ``--stations`` ``painmon station`` processes share the
subscription (one group) and store into one SQLite file or one PostgreSQL (started here with
fsync and synchronous commit on, as in production).

Figures: ingest lag from the device's ``t`` (the bed stamps it as it publishes) to the row
committed, p50 and p99 over every pain and vitals message of the measured window, as each
station reports it on /healthz; messages lost (published pain and vitals whose row never
appeared: must be 0), duplicates, each station's CPU (% of one core) and peak RSS; the screen's
update lag (a pain estimate's device time → the Server-Sent Event carrying it, on a
logged-in session; the screen refreshes every ``station.refresh_s``, 1 s by default) and,
with ``--browser``, in headless Chromium: from ``t`` to the tile showing it in the page.
The peer, ``paho_subscriber``, is a bare paho client subscribed to the same streams
in the same run: the broker's delivery lag, the floor under the station's. The JSON line comes
last (../shared/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import paho.mqtt.client as mqtt

from tools.bench.ward_sim import SimulatedBed

REPO = Path(__file__).resolve().parents[2]
USER = ("bench-nurse", "a bench password")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    # set_tcp_nodelay: see tools/bench/device.py. max_queued_messages: mosquitto's default
    # (1000 per client) drops QoS 1 messages for a consumer that falls that far behind, which
    # a station does for a moment at start-up with 200 beds; a station's broker needs more.
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "set_tcp_nodelay true\nmax_queued_messages 100000\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait(lambda: _answers(port), 10, "mosquitto")
    return proc, port


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not within {timeout_s} s")
        time.sleep(0.1)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


class PahoSubscriber:
    """The peer: the same streams, no validation, no storage; lag = receipt - device t."""

    def __init__(self, port: int) -> None:
        self.lags: list[float] = []
        self.measuring = False
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(
            [("painmon/+/pain", 1), ("painmon/+/vitals", 1)])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c, _u, message) -> None:
        if self.measuring:
            from device.station.store import parse_t

            now = time.time()
            self.lags.append(now - parse_t(json.loads(message.payload)["t"], now))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class BrowserWatcher:
    """The ward in headless Chromium (Debian's): when each tile first showed each estimate,
    recorded in the page by a MutationObserver, on the same clock as the beds'."""

    ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run")
    OBSERVER = """() => { window.shown = {};
        new MutationObserver(records => { const now = Date.now() / 1000;
          for (const r of records) for (const n of r.addedNodes) if (n.dataset && n.dataset.painT) {
            const key = n.dataset.device + " " + n.dataset.painT;
            if (!(key in window.shown)) window.shown[key] = now; } })
        .observe(document.getElementById("ward"), {childList: true}); }"""

    def __init__(self, url: str) -> None:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path="/usr/bin/chromium",
                                                args=list(self.ARGS))
        self.page = self.browser.new_page(viewport={"width": 1600, "height": 1000})
        self.page.goto(url + "/")
        self.page.fill("input[name=username]", USER[0])
        self.page.fill("input[name=password]", USER[1])
        self.page.click("button[type=submit]")
        self.page.wait_for_selector(".tile")
        self.page.evaluate(self.OBSERVER)

    def lags(self, t0_unix: float, t1_unix: float) -> list[float]:
        shown = self.page.evaluate("() => window.shown")
        out = []
        for key, at in shown.items():
            t = float(key.rsplit(" ", 1)[1])
            if t0_unix <= t <= t1_unix:
                out.append(at - t)
        return out

    def close(self) -> None:
        self.browser.close()
        self._pw.stop()


class ScreenWatcher:
    """A logged-in session reading /events: when each bed's newest score reached the screen."""

    def __init__(self, url: str) -> None:
        self.url = url
        jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = self.opener.open(url + "/login", timeout=10).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"csrf_token": token, "username": USER[0],
                                       "password": USER[1]}).encode()
        self.opener.open(url + "/login", data=form, timeout=10).read()
        self.seen: dict[tuple[str, float], float] = {}  # (bed, pain t) -> when on screen
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with self.opener.open(self.url + "/events", timeout=60) as stream:
            for raw in stream:
                line = raw.decode()
                if line.startswith("data: "):
                    now = time.time()
                    for bed in json.loads(line[6:])["beds"]:
                        key = (bed["device_id"], bed["pain_t_unix_s"])
                        self.seen.setdefault(key, now)


def percentile_ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 1)


def run(beds_n: int, seconds: float, db: str, stations_n: int, warmup_s: float,
        browser: bool = False) -> dict:
    from tools.postgres import PostgresServer

    tmp = Path(tempfile.mkdtemp(prefix="station-load-"))
    procs: list[subprocess.Popen] = []
    pg = None
    broker, port = start_mosquitto(tmp)
    try:
        if db == "postgresql":
            pg = PostgresServer(tmp / "pg", durable=True)
            (tmp / "pg").mkdir()
            pg.start()
            db_url = pg.new_database()
        else:
            db_url = f"sqlite:///{tmp / 'station.db'}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        urls = []
        for i in range(stations_n):
            web_port = free_port()
            config = tmp / f"station{i}.toml"
            config.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n\n[station]\n'
                              f'database_url = "{db_url}"\nstate_dir = "{tmp}"\n'
                              f'listen = "127.0.0.1:{web_port}"\nsecure_cookies = false\n')
            if i == 0:
                subprocess.run([sys.executable, "-m", "device.cli", "station", "adduser",
                                USER[0], "--config", str(config)], input=USER[1] + "\n",
                               text=True, check=True, env=env, cwd=REPO, capture_output=True)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "device.cli", "station", "--config", str(config)],
                env=env, cwd=REPO, stdout=open(tmp / f"station{i}.log", "w"),  # noqa: SIM115
                stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{web_port}")
        for url in urls:
            wait(lambda u=url: _healthy(u), 60, f"station {url}")
        peer = PahoSubscriber(port)
        beds = [SimulatedBed("127.0.0.1", port, f"bed-{i:03d}", seed=i).start()
                for i in range(beds_n)]
        screen = ScreenWatcher(urls[0])
        chromium = None
        alarmed = set()

        def hop_all(measure: bool) -> None:
            start = time.monotonic()
            for i, bed in enumerate(beds):
                # Beds spread over the second, as real devices' hops are.
                delay = start + i / beds_n - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                score = bed.score_at(time.time()) + (2.5 if i % 4 == 0 else 0.0)
                bed.hop(score=min(score, 10.0))
                if score >= 5.0 and i not in alarmed:
                    bed.raise_pain_alarm(score)
                    alarmed.add(i)
                elif score < 4.0 and i in alarmed:
                    bed.clear_pain_alarm()
                    alarmed.discard(i)
            rest = start + 1.0 - time.monotonic()
            if rest > 0:
                time.sleep(rest)

        t_end = time.monotonic() + warmup_s
        while time.monotonic() < t_end:
            hop_all(False)
        for bed in beds:
            bed.published.clear()
        if browser:
            chromium = BrowserWatcher(urls[0])
        before = {p.pid: cpu_s(p.pid) for p in procs}
        base = [get_json(u + "/healthz")["broker"] for u in urls]
        peer.measuring = True
        t0, t0_unix = time.monotonic(), time.time()
        while time.monotonic() - t0 < seconds:
            hop_all(True)
        wall, t1_unix = time.monotonic() - t0, time.time()
        peer.measuring = False
        cpu = {p.pid: cpu_s(p.pid) - before[p.pid] for p in procs}
        expected = {(b.device_id, b.boot_id, seq, sub) for b in beds
                    for sub, seq, _ in b.published if sub in ("pain", "vitals")}
        deadline = time.monotonic() + 120
        while (stored := _stored(db_url, expected)) < len(expected) and time.monotonic() < deadline:
            time.sleep(1.0)
        health = [get_json(u + "/healthz")["broker"] for u in urls]
        lags = _lags_from_stations(health, base)
        browser_lags = chromium.lags(t0_unix, t1_unix) if chromium else []
        if chromium:
            chromium.close()
        screen_lags = [seen_at - t for (_, t), seen_at in screen.seen.items()
                       if t is not None and t0_unix <= t <= t1_unix]
        result = {
            "beds": beds_n, "db": db, "stations": stations_n, "seconds": round(wall, 1),
            "messages_per_s": round(sum(len(b.published) for b in beds) / wall, 1),
            "stored_per_s": round(len(expected) / wall, 1),
            "lost": len(expected) - stored, "duplicates_dropped": sum(h["duplicates"] for h in health),
            "rejected": sum(h["rejected"] for h in health),
            "store_retries": sum(h["store_retries"] for h in health),
            "ingest_lag_ms_p50": lags["p50"], "ingest_lag_ms_p99": lags["p99"],
            "screen_lag_ms_p50": percentile_ms(screen_lags, 0.5),
            "screen_lag_ms_p99": percentile_ms(screen_lags, 0.99),
            "browser_lag_ms_p50": percentile_ms(browser_lags, 0.5),
            "browser_lag_ms_p99": percentile_ms(browser_lags, 0.99),
            "browser_updates": len(browser_lags),
            "station_cpu_pct": [round(100 * c / wall, 1) for c in cpu.values()],
            "station_rss_mb": [peak_rss_mb(p.pid) for p in procs],
            "split": [h["received"] - b["received"] for h, b in zip(health, base)],
        }
        peer_result = {"lag_ms_p50": percentile_ms(peer.lags, 0.5),
                       "lag_ms_p99": percentile_ms(peer.lags, 0.99), "messages": len(peer.lags)}
        for bed in beds:
            bed.stop()
        peer.close()
        return {"painmon_station": result, "paho_subscriber": peer_result}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.terminate()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _healthy(url: str) -> bool:
    try:
        return bool(get_json(url + "/healthz")["broker"]["connected"])
    except OSError:
        return False


def _stored(db_url: str, expected: set) -> int:
    """How many of the expected (device, boot, seq, stream) rows are stored."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            have = {(*row, table) for table in ("pain", "vitals") for row in
                    conn.execute(sa.text(f"SELECT device_id, boot_id, seq FROM {table}"))}
    finally:
        engine.dispose()
    return len(expected & have)


def _lags_from_stations(health: list[dict], base: list[dict]) -> dict:
    """Each station reports percentiles over its newest messages; with several stations the
    worse of each is reported (a conservative merge)."""
    p50 = [h["lag_ms"]["p50"] for h in health if h["lag_ms"]["p50"] is not None]
    p99 = [h["lag_ms"]["p99"] for h in health if h["lag_ms"]["p99"] is not None]
    return {"p50": max(p50) if p50 else None, "p99": max(p99) if p99 else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beds", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--stations", type=int, default=1)
    parser.add_argument("--browser", action="store_true", help="also measure the ward's update "
                        "lag in headless Chromium (/usr/bin/chromium)")
    args = parser.parse_args(argv)
    logging.getLogger("device.processing.alarms").setLevel(logging.ERROR)  # a bed's alarm is no news here
    # SIGTERM ends the run through its cleanup (stations, broker, PostgreSQL), as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    load_before = os.getloadavg()[0]
    results = run(args.beds, args.seconds, args.db, args.stations, args.warmup, args.browser)
    s, p = results["painmon_station"], results["paho_subscriber"]
    print(f"{s['beds']} beds, {s['messages_per_s']} msg/s published, {s['stored_per_s']} rows/s "
          f"stored, {s['stations']} station(s) on {s['db']}, {s['seconds']} s measured")
    print(f"  station: ingest lag p50 {s['ingest_lag_ms_p50']} ms, p99 {s['ingest_lag_ms_p99']} "
          f"ms; screen lag p50 {s['screen_lag_ms_p50']} ms, p99 {s['screen_lag_ms_p99']} ms; "
          f"browser lag p50 {s['browser_lag_ms_p50']} ms, p99 {s['browser_lag_ms_p99']} ms; "
          f"lost {s['lost']}; CPU {s['station_cpu_pct']} %; peak RSS {s['station_rss_mb']} MB; "
          f"split {s['split']}")
    print(f"  paho_subscriber (broker delivery only): p50 {p['lag_ms_p50']} ms, "
          f"p99 {p['lag_ms_p99']} ms")
    print(json.dumps({"bench": "station_load", "data": None, "results": results,
                      "machine": {"cpu": platform.processor() or platform.machine(),
                                  "cores": os.cpu_count(), "python": platform.python_version(),
                                  # the machine is shared: how busy it was around the run
                                  "loadavg_1min": [round(load_before, 1),
                                                   round(os.getloadavg()[0], 1)]}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
