"""Station fixtures: a store on SQLite or on a real PostgreSQL, an ingest on a real mosquitto."""

from __future__ import annotations

import json as _json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tools.postgres import PostgresServer

from device.config import MqttConfig
from device.station.ingest import Ingest
from device.station.store import Store


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_path_factory.mktemp("pg"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'station.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def store(store_url) -> Iterator[Store]:
    store = Store(store_url)
    store.migrate()
    yield store
    store.close()


def station_mqtt(broker, **overrides) -> MqttConfig:
    return MqttConfig.model_validate({"host": broker.host, "port": broker.port,
                                      "keepalive_s": 2, "reconnect_min_s": 0.1,
                                      "reconnect_max_s": 0.5, **overrides})


@pytest.fixture
def ingest(store, mosquitto) -> Iterator[Ingest]:
    ingest = Ingest(store, station_mqtt(mosquitto), rollup_every_s=0.2)
    ingest.start()
    assert ingest.wait_connected(), "the station did not connect"
    yield ingest
    ingest.stop()


def wait_for(condition, timeout_s: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout_s} s")
        time.sleep(0.05)


# -- a station process and a real browser ------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NURSE = ("nurse-ann", "correct horse battery")
VIEWER = ("viewer-bob", "another long password")
ADMIN = ("admin-cy", "the admin's long password")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StationProcess:
    """``painmon station`` as a user runs it, on a fixture broker and database."""

    def __init__(self, tmp_path, broker, db_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_dir = tmp_path / "station"
        self.db_url = db_url
        self.config = tmp_path / "station.toml"
        self.config.write_text(
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nkeepalive_s = 2\n'
            "reconnect_min_s = 0.1\nreconnect_max_s = 0.5\n\n"
            f'[station]\ndatabase_url = "{db_url}"\nstate_dir = "{self.state_dir}"\n'
            f'listen = "127.0.0.1:{self.port}"\nrefresh_s = 0.3\nstale_after_s = 4.0\n'
            "secure_cookies = false\n")
        self.log = tmp_path / "station.log"
        self.process: subprocess.Popen | None = None

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "device.cli", "station", *args,
                               "--config", str(self.config)], input=stdin, text=True, check=False,
                              capture_output=True, cwd=REPO, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO)})

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "device.cli", "station", "--config", str(self.config)],
            cwd=REPO, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
            env={**os.environ, "PYTHONPATH": str(REPO)})
        wait_for(lambda: self.health().get("broker", {}).get("connected"), 30,
                 f"the station on {self.url} (log: {self.log})")

    def health(self) -> dict:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                return _json.loads(r.read())
        except OSError:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the station exited:\n{self.log.read_text()}") from None
            return {}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def station(tmp_path, mosquitto, store_url) -> Iterator[StationProcess]:
    from device.station import people

    station = StationProcess(tmp_path, mosquitto, store_url)
    store = Store(store_url)
    store.migrate()  # what the station does at start; a second migrate is a no-op
    people.add_user(store, *NURSE, "nurse")
    people.add_user(store, *VIEWER, "viewer")
    people.add_user(store, *ADMIN, "admin")
    store.close()
    station.start()
    yield station
    station.stop()


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: run tools/test.sh, which installs Debian's chromium",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def log_in(page, station, user=NURSE) -> None:
    page.goto(station.url + "/")
    page.fill("input[name=username]", user[0])
    page.fill("input[name=password]", user[1])
    page.click("button[type=submit]")
    page.wait_for_url(station.url + "/")
