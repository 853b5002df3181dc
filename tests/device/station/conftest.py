"""Station fixtures: a store on SQLite or on a real PostgreSQL, an ingest on a real mosquitto."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from device.config import MqttConfig
from device.station.ingest import Ingest
from device.station.store import Store
from tools.postgres import PostgresServer


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
