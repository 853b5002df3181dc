from __future__ import annotations

import functools
import tomllib
from pathlib import Path

import pytest

from device.config import (
    HARDWARE_ENV,
    ConfigError,
    PainmonConfig,
    default_config,
    load_config,
    reference_markdown,
)

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "systemd" / "painmon.example.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HARDWARE_ENV, raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str, name: str = "painmon.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def problems(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert all(p.file == str(path) for p in info.value.problems)
    return {p.key: p.message for p in info.value.problems}


def leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for name, value in tree.items():
        if isinstance(value, dict):
            keys |= leaf_keys(value, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_defaults_run_the_demo():
    config = default_config()
    assert config.hardware == "emulated"
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.protocol) == ("127.0.0.1", 1883, "5")
    assert config.mqtt.client_id_for(config.device_id) == "painmon-painmon-demo"
    assert config.sensors.ppg.sample_rate_hz == 100 and config.sensors.adc.address == 0x48
    assert config.state_dir == Path.home() / ".local" / "state" / "painmon"


def test_empty_file_equals_defaults(write):
    assert load_config(write("")) == default_config()


def test_state_dir_from_systemd(monkeypatch, write):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/painmon:/var/lib/other")
    assert default_config().state_dir == Path("/var/lib/painmon")
    assert load_config(write('state_dir = "~/pm"')).state_dir == Path.home() / "pm"


def test_values_are_read(write):
    config = load_config(write(
        'device_id = "bed-3"\n[mqtt]\nport = 8883\nclient_id = "x"\n'
        '[sensors.ppg]\nchip = "max30101"\nmode = "multi_led"\n'
        '[sensors.ppg.led_current_ma]\ngreen = 3.2\n'))
    assert config.device_id == "bed-3"
    assert config.mqtt.port == 8883 and config.mqtt.client_id_for(config.device_id) == "x"
    assert config.sensors.ppg.mode == "multi_led" and config.sensors.ppg.led_current_ma.green == 3.2


@pytest.mark.parametrize("text, key", [
    ("bogus = 1", "bogus"),
    ("[mqtt]\nbogus = 1", "mqtt.bogus"),
    ("[sensors.ppg.led_current_ma]\nblue = 1.0", "sensors.ppg.led_current_ma.blue"),
    ("[sensor]\n", "sensor"),
])
def test_unknown_keys_are_named(write, text, key):
    found = problems(write(text))
    assert list(found) == [key]
    assert found[key].startswith("unknown key")


def test_unknown_key_suggests_the_near_one(write):
    found = problems(write("[mqtt]\nkeepalive = 5"))
    assert found["mqtt.keepalive"] == "unknown key (did you mean 'keepalive_s'?)"


@pytest.mark.parametrize("text, key, words", [
    ("[sensors.ppg]\nsample_rate_hz = 120", "sensors.ppg.sample_rate_hz", ["3200", "120"]),
    ("[mqtt]\nport = 0", "mqtt.port", ["greater than or equal to 1", "0"]),
    ("[mqtt]\nport = 65536", "mqtt.port", ["65535"]),
    ("[mqtt]\nport = \"1883\"", "mqtt.port", ["integer"]),
    ("[mqtt]\nqos = 3", "mqtt.qos", ["0, 1 or 2"]),
    ("[mqtt]\ntopic_prefix = \"a/+/b\"", "mqtt.topic_prefix", ["wildcard"]),
    ("[mqtt]\ntopic_prefix = \"a//b\"", "mqtt.topic_prefix", ["empty"]),
    ("[mqtt]\ntopic_prefix = \"\"", "mqtt.topic_prefix", ["empty"]),
    ("[mqtt]\nreconnect_min_s = 10.0\nreconnect_max_s = 1.0", "mqtt.reconnect_max_s",
     ["mqtt.reconnect_min_s"]),
    ("[sensors.adc]\naddress = 0x4C", "sensors.adc.address", ["0x48", "0x4b", "got 0x4c"]),
    ("[sensors.accel]\naddress = 0x57", "sensors.accel.address", ["0x68", "0x69"]),
    ("[sensors.ppg]\nmode = \"multi_led\"", "sensors.ppg.mode", ["max30101"]),
    ("[sensors.ppg.led_current_ma]\nred = 52.0", "sensors.ppg.led_current_ma.red", ["51"]),
    ("[sensors.ppg.led_current_ma]\ngreen = 5.0", "sensors.ppg.led_current_ma.green",
     ["max30102"]),
    ("[sensors.gsr]\npga_v = 0.3", "sensors.gsr.pga_v", ["0.512", "0.3"]),
    ("[sensors.ecg]\nadc_channel = 0", "sensors.gsr.adc_channel", ["sensors.ecg.adc_channel"]),
    ("[sensors.ecg]\nadc_channel = 4", "sensors.ecg.adc_channel", ["3"]),
    ("[sensors.adc]\ndata_rate_sps = 250", "sensors.adc.data_rate_sps",
     ["sensors.gsr.rate_hz 8", "sensors.ecg.rate_hz 250", "258"]),
    ("[sensors.adc]\nenabled = false", "sensors.adc.enabled", ["sensors.gsr", "sensors.ecg"]),
    ("[sensors.ppg]\nenabled = \"yes\"", "sensors.ppg.enabled", ["boolean"]),
    ("[processing]\nhop_s = 5.0\nwindow_s = 4.0", "processing.hop_s", ["processing.window_s"]),
    ('device_id = "bed 3"', "device_id", ["pattern"]),
    ("mqtt = 5", "mqtt", ["table"]),
])
def test_bad_values_name_the_key(write, text, key, words):
    found = problems(write(text))
    assert key in found, found
    for word in words:
        assert word in found[key], found[key]


def test_cross_checks_pass_when_the_conflict_is_off(write):
    # The shared channel and the rate budget only count enabled analog sensors.
    config = load_config(write("[sensors.ecg]\nenabled = false\nadc_channel = 0\n"
                               "[sensors.adc]\ndata_rate_sps = 8"))
    assert config.sensors.gsr.adc_channel == config.sensors.ecg.adc_channel == 0


def test_every_problem_is_reported(write):
    found = problems(write("[mqtt]\nport = 0\nbogus = 1\n[simulator]\nscenario = \"x\""))
    assert set(found) == {"mqtt.port", "mqtt.bogus", "simulator.scenario"}


def test_error_text_is_one_line_per_problem(write):
    path = write("[mqtt]\nport = 0\nbogus = 1")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert f"{path}: mqtt.bogus: unknown key" in lines
    assert any(line.startswith(f"{path}: mqtt.port: ") for line in lines)


def test_toml_syntax_error_names_line_and_column(write):
    path = write('device_id = "a"\n[mqtt]\nport = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.file == str(path)
    assert "line 3, column" in problem.message and "invalid TOML" in problem.message


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: no such file"


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('device_id = "b\xe9d"'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_env_overrides_hardware(monkeypatch, write):
    path = write('hardware = "emulated"')
    monkeypatch.setenv(HARDWARE_ENV, "real")
    assert load_config(path).hardware == "real"
    assert default_config().hardware == "real"
    monkeypatch.setenv(HARDWARE_ENV, "fake")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert (problem.file, problem.key) == (f"env {HARDWARE_ENV}", "hardware")
    monkeypatch.setenv(HARDWARE_ENV, "")
    assert load_config(path).hardware == "emulated"


def test_example_file_loads_and_documents_every_key():
    config = load_config(EXAMPLE)
    assert config.hardware == "real" and config.device_id == "bed-12"
    with open(EXAMPLE, "rb") as f:
        written = leaf_keys(tomllib.load(f))
    text = EXAMPLE.read_text()
    every = leaf_keys(default_config().model_dump())
    commented = every - written
    # Optional pins default to none, which TOML cannot write: they are shown commented out.
    dump = default_config().model_dump()
    unset = {k for k in every if functools.reduce(dict.get, k.split("."), dump) is None}
    # The simulator is refused on real hardware: shown commented out for emulated runs.
    assert commented == ({"state_dir", "mqtt.client_id", "face.model_dir", "simulator.seed",
                          "simulator.scenario"} | unset)
    for key in commented:
        assert f"# {key.split('.')[-1]} = " in text


def test_reference_lists_every_key_with_description():
    markdown = reference_markdown()
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    keys = {row.split("`")[1] for row in rows}
    assert keys == leaf_keys(default_config().model_dump())
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 4 and all(cells), row
    assert "| `sensors.adc.address` | one of 0x48, 0x49, 0x4a, 0x4b | `0x48` |" in markdown
    assert "| `mqtt.port` | int, 1 to 65535 | `1883` |" in markdown


def test_models_forbid_extras_and_describe_every_field():
    def walk(model):
        assert model.model_config["extra"] == "forbid", model
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
            if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields"):
                walk(field.annotation)

    walk(PainmonConfig)


def test_real_hardware_refuses_the_demo_parts(write):
    """A device installed from a configuration must never score the demo's photograph or run
    the simulator: validation names the key."""
    got = problems(write('hardware = "real"\n[face]\ncamera = "photo"'))
    assert list(got) == ["face.camera"] and "demo" in got["face.camera"]
    got = problems(write('hardware = "real"\n[simulator]\nscenario = "rest"'))
    assert list(got) == ["simulator.scenario"]
    # Off, or emulated: fine.
    assert load_config(write('hardware = "real"\n[face]\ncamera = "photo"\nenabled = false'))
    assert load_config(write('[face]\ncamera = "photo"\n[simulator]\nscenario = "rest"'))


def test_the_default_camera_follows_the_hardware(write, monkeypatch):
    assert load_config(write("")).face.camera == "photo"
    assert load_config(write('hardware = "real"')).face.camera == "picamera2"
    assert load_config(write('hardware = "real"\n[face]\ncamera = "0"')).face.camera == "0"
    monkeypatch.setenv(HARDWARE_ENV, "real")
    assert load_config(write("")).face.camera == "picamera2"
