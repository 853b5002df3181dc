"""A configuration that validates runs: every finding of the trials as a test, and a property
test mutating the example configuration, where validation names the key or `run` starts (an
emulated board, a loopback broker), never a traceback or a hang."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.device.config.toml_out import dumps

from device.config import ConfigError, load_config
from device.config.sections import HARDWARE_ENV

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "systemd" / "painmon.example.toml"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def example() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


@pytest.fixture
def files(tmp_path):
    """Files of every kind a configuration may name."""
    f = {"dir": tmp_path / "a-dir", "state": tmp_path / "state"}
    f["dir"].mkdir()
    for name, text, mode in (("password", "pw\n", 0o600), ("open_password", "pw\n", 0o644),
                             ("empty", "", 0o600), ("ca", PEM_CERT, 0o644),
                             ("key", PEM_KEY, 0o600), ("not_pem", "hello\n", 0o600)):
        f[name] = tmp_path / name
        f[name].write_text(text)
        f[name].chmod(mode)
    return f


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "painmon.toml"
    path.write_text(dumps(data))
    return path


def problems(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        load_config(path, for_run=True)
    return {p.key: p.message for p in err.value.problems}


def with_(data: dict, dotted: str, value) -> dict:
    data = copy.deepcopy(data)
    *sections, key = dotted.split(".")
    node = data
    for s in sections:
        node = node.setdefault(s, {})
    if value is DELETE:
        node.pop(key, None)
    else:
        node[key] = value
    return data


DELETE = object()


@pytest.mark.parametrize(("key", "value", "says"), [
    ("sensors.gsr.r_ref_ohm", float("inf"), "finite"),
    ("sensors.gsr.r_ref_ohm", 1e-300, "greater than or equal"),
    ("sensors.ecg.gain", float("inf"), "finite"),
    ("sensors.ecg.gain", 1e-300, "greater than or equal"),
    ("face.fps", 1e-300, "greater than or equal"),
    ("pain.motion_high_g", float("nan"), "finite"),
    ("alarm.buzzer_pin", 53, "less than or equal to 27"),
    ("state_dir", "var/lib/painmon", "absolute"),
    ("state_dir", "/var/lib/../../etc/painmon", "'..'"),
    ("recording.dir", "/srv/../recordings", "'..'"),
])
def test_values_that_used_to_pass_are_refused_naming_the_key(tmp_path, key, value, says):
    found = problems(write(tmp_path, with_(example(), key, value)))
    assert key in found and says in found[key], found


def test_pins_are_distinct_across_sensors_alarm_and_buttons(tmp_path):
    data = with_(with_(example(), "alarm.led_high_pin", 12), "alarm.buzzer_pin", 12)
    assert "GPIO12 is already alarm.led_high_pin" in problems(write(tmp_path, data))[
        "alarm.buzzer_pin"]
    data = with_(with_(example(), "sensors.ppg.int_pin", 17), "buttons.report_pin", 17)
    assert "sensors.ppg.int_pin" in problems(write(tmp_path, data))["buttons.report_pin"]
    data = with_(with_(example(), "alarm.led_high_pin", 12), "buttons.stay_pin", 12)
    assert "GPIO12 is already alarm.led_high_pin" in problems(write(tmp_path, data))[
        "buttons.stay_pin"]
    assert "I2C1 SDA" in problems(write(tmp_path, with_(example(), "alarm.buzzer_pin", 2)))[
        "alarm.buzzer_pin"]


@pytest.mark.parametrize(("which", "says"), [
    ("missing", "no such file"), ("empty", "is empty"), ("dir", "is a directory"),
    ("open_password", "chmod 600"), ("devzero", "not a regular file")])
def test_the_password_file_is_checked_at_validation(tmp_path, files, which, says):
    path = {"missing": tmp_path / "nope", "devzero": Path("/dev/zero")}.get(which) or files[which]
    data = with_(with_(example(), "mqtt.username", "bed-12"), "mqtt.password_file", str(path))
    assert says in problems(write(tmp_path, data))["mqtt.password_file"]


@pytest.mark.parametrize(("which", "says"), [
    ("missing", "no such file"), ("empty", "is empty"), ("dir", "is a directory"),
    ("not_pem", "PEM"), ("devzero", "not a regular file")])
def test_the_tls_ca_file_is_checked_at_validation(tmp_path, files, which, says):
    path = {"missing": tmp_path / "nope", "devzero": Path("/dev/zero")}.get(which) or files[which]
    data = with_(with_(example(), "mqtt.tls.enabled", True), "mqtt.tls.ca_file", str(path))
    assert says in problems(write(tmp_path, data))["mqtt.tls.ca_file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_password_file_is_refused(tmp_path, files):
    files["password"].chmod(0o000)
    data = with_(with_(example(), "mqtt.username", "u"), "mqtt.password_file",
                 str(files["password"]))
    assert "not readable" in problems(write(tmp_path, data))["mqtt.password_file"]


def test_state_dir_set_to_a_file_is_refused(tmp_path, files):
    found = problems(write(tmp_path, with_(example(), "state_dir", str(files["ca"]))))
    assert "not a directory" in found["state_dir"]


def painmon(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), HARDWARE_ENV: "emulated"}
    return subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def test_an_empty_config_is_refused_for_run_and_dev_zero_at_once(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    for args in (["validate-config", str(empty)], ["run", "--config", str(empty),
                                                   "--seconds", "1"]):
        done = painmon(*args)
        assert done.returncode == 2 and "device_id" in done.stderr, done.stderr
    done = painmon("validate-config", "/dev/zero")
    assert done.returncode == 2 and "not a regular file" in done.stderr


# -- the property test --------------------------------------------------------------------

def leaves(data: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in data.items():
        out += leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


#: The example's keys, and those it leaves commented out.
KEYS = sorted(set(leaves(example())) | {
    "state_dir", "mqtt.client_id", "mqtt.username", "mqtt.password_file",
    "mqtt.password_credential", "mqtt.tls.ca_file", "mqtt.tls.cert_file", "mqtt.tls.key_file",
    "face.model_dir", "sensors.ppg.int_pin", "sensors.adc.alert_pin", "sensors.ecg.lo_plus_pin",
    "sensors.ecg.lo_minus_pin", "sensors.ecg.drdy_pin", "alarm.led_high_pin",
    "alarm.led_medium_pin", "alarm.buzzer_pin", "buttons.acknowledge_pin", "buttons.report_pin",
    "recording.dir"})
ODD = st.one_of(
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e-300, -1e-300, 1e300, 0.0,
                     -1.0, 0, -1, 1, 2, 12, 27, 28, 53, 2**40, True, False, "", "yes", "..",
                     "relative/path", "/dev/zero", "/nonexistent/painmon/x", "~/painmon-x",
                     [], {}, [1, 2], "painmon", "3.1.1"]),
    st.sampled_from(["password", "open_password", "empty", "ca", "key", "not_pem", "dir",
                     "state"]).map(lambda name: ("FILE", name)),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6),
    st.just(DELETE))


def run_starts(config_path: Path, timeout_s: float = 60.0) -> None:
    """`painmon run` for a moment, on a thread (the signal handlers stay the test's)."""
    from device.app.device import run_device

    outcome: dict = {}

    def run():
        try:
            outcome["rc"] = run_device(load_config(config_path, for_run=True), seconds=0.3)
        except BaseException as exc:  # noqa: BLE001 - reported below, with the traceback
            outcome["exc"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"run hung with {config_path.read_text()}"
    assert "exc" not in outcome, (outcome["exc"], config_path.read_text())
    assert outcome["rc"] == 0


def test_mutated_example_validates_with_the_key_named_or_runs(tmp_path_factory, monkeypatch,
                                                              mosquitto_session):
    monkeypatch.setenv(HARDWARE_ENV, "emulated")
    base = tmp_path_factory.mktemp("configs")
    kinds = {"password": ("pw\n", 0o600), "open_password": ("pw\n", 0o644), "empty": ("", 0o600),
             "ca": (PEM_CERT, 0o644), "key": (PEM_KEY, 0o600), "not_pem": ("x\n", 0o600)}
    for name, (text, mode) in kinds.items():
        (base / name).write_text(text)
        (base / name).chmod(mode)
    (base / "dir").mkdir()
    started = []

    @settings(max_examples=70, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.sampled_from(KEYS), ODD), min_size=1, max_size=2))
    def check(mutations):
        data = example()
        data = with_(data, "mqtt.host", mosquitto_session.host)
        data = with_(data, "mqtt.port", mosquitto_session.port)
        data = with_(data, "face.enabled", False)  # the camera thread has tests of its own
        data = with_(data, "state_dir", str(base / "state"))
        for key, value in mutations:
            if isinstance(value, tuple) and value[0] == "FILE":
                value = str(base / value[1])
            data = with_(data, key, value)
        path = base / "mutated.toml"
        path.write_text(dumps(data))
        try:
            load_config(path, for_run=True)
        except ConfigError as exc:
            named = {p.key for p in exc.problems}
            assert all(named), exc.problems  # every problem names its key
            touched = {k.split(".")[0] for k, _ in mutations}
            assert {k.split(".")[0] for k in named} & touched, (mutations, exc.problems)
            return
        run_starts(path)
        started.append(mutations)

    check()
    print(f"{len(started)} mutated configurations validated and ran")


def test_an_empty_systemd_credential_is_refused_at_validation(tmp_path, monkeypatch):
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "mqtt").write_text("")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    data = with_(with_(example(), "mqtt.username", "bed-12"), "mqtt.password_credential", "mqtt")
    assert "is empty" in problems(write(tmp_path, data))["mqtt.password_credential"]
    (tmp_path / "creds" / "mqtt").write_text("pw\n")
    load_config(write(tmp_path, data), for_run=True)
