"""painmon station's command line: accounts, bad input named, the station extra's absence."""

from __future__ import annotations

import pytest

from tests.device.station.conftest import StationProcess

from device.station import people
from device.station.store import Store


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_adduser_stores_an_argon2_hash_and_refuses_weak_input(tmp_path, mosquitto, store_url):
    station = StationProcess(tmp_path, mosquitto, store_url)
    done = station.cli("adduser", "nurse-cy", "--role", "nurse", stdin="a long enough secret\n")
    assert done.returncode == 0, done.stderr
    store = Store(store_url)
    try:
        assert people.authenticate(store, "nurse-cy", "a long enough secret") == "nurse"
        assert people.authenticate(store, "nurse-cy", "a long enough secreT") is None
        assert people.authenticate(store, "nobody", "a long enough secret") is None
        with store.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT password_hash FROM users").scalar()
        assert stored.startswith("$argon2id$") and "secret" not in stored
    finally:
        store.close()
    short = station.cli("adduser", "nurse-dd", stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr


def test_a_bad_setting_is_named_with_its_file(tmp_path):
    from device.cli import main

    path = tmp_path / "station.toml"
    path.write_text('[station]\nstale_after_s = "soon"\n')
    assert main(["station", "--config", str(path)]) == 2
    path.write_text('[station]\nlisten = "nowhere"\n')
    assert main(["station", "--config", str(path)]) == 2
    path.write_text("")
    assert main(["station", "adduser", "--config", str(path)]) == 2  # no user name
