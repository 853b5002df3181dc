"""The station on a secured broker: TLS with a client certificate, a password, an ACL."""

from __future__ import annotations

import pytest

from tests.device.comms.test_mqtt_security import DEVICE, PASSWORD, STATION_PASSWORD, pki, secured  # noqa: F401
from tests.device.station.conftest import wait_for
from tests.device.station.test_ingest import device
from tools.bench.ward_sim import SimulatedBed

from device.config import MqttConfig
from device.station.ingest import Ingest


def tls_config(pki_dir, port: int, password_file) -> MqttConfig:
    return MqttConfig.model_validate({
        "host": "127.0.0.1", "port": port, "keepalive_s": 2, "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5, "username": "station", "password_file": str(password_file),
        "tls": {"enabled": True, "ca_file": str(pki_dir / "ca.crt"),
                "cert_file": str(pki_dir / "client.crt"),
                "key_file": str(pki_dir / "client.key")}})


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_station_reads_over_tls_with_its_password_and_acl(store, secured, pki, tmp_path):  # noqa: F811
    broker, tls_port = secured
    password_file = tmp_path / "station.pass"
    password_file.write_text(STATION_PASSWORD + "\n")
    ingest = Ingest(store, tls_config(pki, tls_port, password_file), rollup_every_s=0.2)
    ingest.start()
    bed = SimulatedBed(broker.host, broker.port, DEVICE, username=DEVICE, password=PASSWORD)
    try:
        assert ingest.wait_connected(), "the station did not connect over TLS"
        bed.start()
        bed.hop(score=6.0)
        wait_for(lambda: device(store, DEVICE) and device(store, DEVICE).score == 6.0,
                 what="the bed's estimate over TLS")
        # Its commands are allowed by the ACL (write on painmon/+/cmd/nurse/+: the station sends
        # as nurses) and answered.
        alarm = bed.raise_pain_alarm()
        wait_for(lambda: device(store, DEVICE).loudest == "medium", what="the alarm")
        request_id = ingest.send_command(DEVICE, "acknowledge", {"alarm_id": alarm.id,
                                                                 "by": "nurse"}, "nurse")
        wait_for(lambda: (c := store.command(request_id)) and c.ok, what="the result")
    finally:
        bed.stop()
        ingest.stop()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_wrong_password_is_not_connected(store, secured, pki, tmp_path):  # noqa: F811
    _, tls_port = secured
    password_file = tmp_path / "station.pass"
    password_file.write_text("not the password\n")
    ingest = Ingest(store, tls_config(pki, tls_port, password_file))
    ingest.start()
    try:
        assert not ingest.wait_connected(2.0)
        assert ingest.stats.disconnected_since is not None
    finally:
        ingest.stop()
