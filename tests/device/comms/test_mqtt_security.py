"""TLS, passwords and an ACL on a real mosquitto: the device gets in, nobody else does.

A throwaway CA, server and client certificate are made with the openssl command line for each
test session; mosquitto gets a TLS listener that requires a client certificate, a password
file (mosquitto_passwd) and an ACL limiting the device to painmon/<device_id>/#.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import _free_port
from tests.device.mqtt_helpers import wait_until

from device.comms.link import MqttCredentialError, MqttLink, read_password
from device.config import MqttConfig, PainmonConfig

DEVICE = "bed-sec"
PASSWORD = "s3cret-Pa55word-that-must-not-leak"
STATION_PASSWORD = "station-pw"


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command line not installed")
    d = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    # Key usage on the CA: Python 3.13's default context verifies strictly (VERIFY_X509_STRICT)
    # and refuses a CA certificate without it.
    _run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
         "-subj", "/CN=painmon test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, ext in (("server", ["-extfile", "server.ext"]), ("client", [])):
        _run("openssl", "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
             f"/CN={name}", cwd=d)
        _run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *ext, cwd=d)
    return d


@pytest.fixture
def secured(mosquitto_factory, pki, tmp_path):
    """(broker, tls_port): plain listener and a TLS one, both with passwords and the ACL."""
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    _run("mosquitto_passwd", "-b", str(passwd), DEVICE, PASSWORD, cwd=tmp_path)
    _run("mosquitto_passwd", "-b", str(passwd), "station", STATION_PASSWORD, cwd=tmp_path)
    acl = tmp_path / "acl"
    acl.write_text(f"user {DEVICE}\ntopic readwrite painmon/{DEVICE}/#\n"
                   f"topic write homeassistant/+/{DEVICE}/#\ntopic read homeassistant/status\n\n"
                   "user station\ntopic read painmon/#\ntopic write painmon/+/cmd/nurse/+\n")
    tls_port = _free_port()
    broker = mosquitto_factory(
        f"password_file {passwd}\nacl_file {acl}\n"
        f"listener {tls_port} 127.0.0.1\ncafile {pki / 'ca.crt'}\n"
        f"certfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        "require_certificate true\n", allow_anonymous=False)
    return broker, tls_port


def station(broker, password: str = STATION_PASSWORD, topic: str = "painmon/#"):
    """A consumer on the plain listener; returns (client, messages, connect reason)."""
    messages: list[mqtt.MQTTMessage] = []
    outcome: dict = {}
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                         reconnect_on_failure=False)
    client.username_pw_set("station", password)

    def on_connect(c, _u, _f, reason, _p):
        outcome["reason"] = reason
        if not reason.is_failure:
            c.subscribe(topic, qos=1)
        else:
            ready.set()

    client.on_connect = on_connect
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, m: messages.append(m)
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert ready.wait(5)
    return client, messages, outcome["reason"]


def device_mqtt(pki: Path, port: int, password_file: Path, **extra) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, username=DEVICE, password_file=password_file,
                      tls={"enabled": True, "ca_file": pki / "ca.crt",
                           "cert_file": pki / "client.crt", "key_file": pki / "client.key"},
                      reconnect_min_s=0.1, reconnect_max_s=0.5, will_delay_s=0, **extra)


def test_device_works_over_tls_and_stays_in_its_topics(secured, pki, tmp_path, caplog):
    broker, tls_port = secured
    caplog.set_level(logging.DEBUG)
    secret = tmp_path / "mqtt-password"
    secret.write_text(PASSWORD + "\n")
    client, seen, reason = station(broker)
    try:
        assert not reason.is_failure
        link = MqttLink(device_mqtt(pki, tls_port, secret), DEVICE)
        link._client.enable_logger(logging.getLogger("paho"))  # paho's own packet log too
        with link:
            assert link.wait_connected(10), link.last_connect_reason
            assert link.publish_json("pain", {"schema": "painmon.pain/1", "score": 2.0})
            link.publish_raw("painmon/other-bed/pain", b'{"score": 9}', qos=1)  # denied
            wait_until(lambda: any(m.topic == f"painmon/{DEVICE}/pain" for m in seen), 5,
                       "the device's pain over TLS")
            wait_until(lambda: link.acknowledged >= 3, 5, "PUBACKs")
            time.sleep(0.3)  # time for a wrongly allowed message to reach the station
            text = repr(link)
        topics = {m.topic for m in seen}
        assert f"painmon/{DEVICE}/status" in topics
        assert "painmon/other-bed/pain" not in topics
    finally:
        client.disconnect()
        client.loop_stop()
    assert "tls=True" in text
    for where in (text, caplog.text, str(link.config), repr(link.config),
                  link.config.model_dump_json()):
        assert PASSWORD not in where


def test_wrong_credentials_are_refused(secured, pki, tmp_path, caplog):
    broker, tls_port = secured
    client, _, reason = station(broker, password="wrong")
    client.loop_stop()
    assert reason.is_failure
    assert "not authorized" in str(reason).lower() or "bad user name" in str(reason).lower()
    wrong = tmp_path / "wrong-password"
    wrong.write_text("guess-" + PASSWORD)
    caplog.set_level(logging.DEBUG)
    with MqttLink(device_mqtt(pki, tls_port, wrong), DEVICE) as link:
        wait_until(lambda: link.refused >= 1, 10, "a refused CONNECT")
        assert not link.connected
    assert "guess-" not in caplog.text and PASSWORD not in caplog.text


def test_tls_without_the_ca_is_not_connected(secured, pki, tmp_path):
    _, tls_port = secured
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    config = device_mqtt(pki, tls_port, secret).model_copy(
        update={"tls": MqttConfig().tls.model_copy(update={"enabled": True})})
    with MqttLink(config, DEVICE) as link:  # system CAs do not know the throwaway CA
        assert not link.wait_connected(1.5)


def test_password_from_a_systemd_credential(tmp_path, monkeypatch):
    (tmp_path / "mqtt").write_text(PASSWORD + "\nignored second line\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = MqttConfig(username=DEVICE, password_credential="mqtt")
    assert read_password(config) == PASSWORD
    assert PASSWORD not in repr(config)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(MqttCredentialError, match="CREDENTIALS_DIRECTORY"):
        read_password(config)


def test_password_errors_name_the_file_not_the_secret(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(MqttCredentialError, match=str(missing)):
        read_password(MqttConfig(username="u", password_file=missing))
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(MqttCredentialError, match="empty"):
        read_password(MqttConfig(username="u", password_file=empty))


def test_config_refuses_a_password_without_user_or_two_sources():
    with pytest.raises(ValueError, match="username"):
        PainmonConfig.model_validate({"mqtt": {"password_file": "/x"}})
    with pytest.raises(ValueError, match="not both"):
        PainmonConfig.model_validate({"mqtt": {"username": "u", "password_file": "/x",
                                               "password_credential": "mqtt"}})
    with pytest.raises(ValueError, match="cert_file"):
        PainmonConfig.model_validate({"mqtt": {"tls": {"enabled": True, "key_file": "/k"}}})


def test_a_certificate_for_another_host_is_refused_and_logged(secured, pki, tmp_path, caplog):
    """The broker's certificate names 127.0.0.1; reached as "localhost" it does not match."""
    _, tls_port = secured
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    caplog.set_level(logging.INFO)
    config = device_mqtt(pki, tls_port, secret).model_copy(update={"host": "localhost"})
    with MqttLink(config, DEVICE) as link:
        wait_until(lambda: link.refused >= 1, 10, "a failed TLS handshake")
        assert not link.connected
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("certificate" in e.lower() and "localhost" in e for e in errors), errors
    assert "certificate" in link.last_connect_reason.lower()
