"""``painmon admit``, ``painad``, ``analgesia``, ``discharge`` against a running device through
a real broker: each a command the device validates and answers."""

from __future__ import annotations

import json

import pytest

from sensors.clock import SteppedClock
from tests.device.mqtt_helpers import device_config

from device.app.device import follow_stays, mqtt_output
from device.app.root import build_monitor
from device.care.stay import StayStore
from device.cli import main as cli_main
from device.comms.link import MqttLink
from device.config import default_config
from device.recording.writer import attach_recorder


def test_the_bedside_commands_from_the_command_line(mosquitto, tmp_path, capsys):
    device_id = "bed-cli"
    config = device_config(mosquitto, tmp_path, device_id)
    link = MqttLink(config.mqtt, device_id)
    monitor = build_monitor(config, SteppedClock(), [])
    output = mqtt_output(monitor, link)
    link.start()
    common = ["--broker", f"{mosquitto.host}:{mosquitto.port}", "--device", device_id]
    try:
        assert link.wait_connected(5)
        assert cli_main(["admit", "Jane Doe", *common]) == 2
        assert "never a name" in capsys.readouterr().err
        assert cli_main(["admit", "enc-0815", "--bed", "12", *common]) == 0
        admitted = json.loads(capsys.readouterr().out)
        assert admitted["reference"] == "enc-0815" and admitted["bed"] == "12"
        items = ["--negative-vocalization", "0", "--facial-expression", "1",
                 "--body-language", "1", "--consolability", "0"]
        assert cli_main(["painad", *items, *common]) == 2  # breathing left out
        assert "breathing" in capsys.readouterr().err
        assert cli_main(["painad", "--breathing", "1", *items, *common]) == 0
        assert json.loads(capsys.readouterr().out)["total"] == 3
        assert cli_main(["analgesia", "--route", "oral", "--drug-class", "nsaid", *common]) == 0
        assert json.loads(capsys.readouterr().out)["reassess_after_min"] == 60.0
        assert cli_main(["discharge", "enc-0815", *common]) == 0
        assert monitor.bedside.stay is None
    finally:
        monitor.pipeline.stop()
        output.stop()
        link.stop()
    store = StayStore(tmp_path)
    (stay,) = store.stays()
    assert stay.reference == "enc-0815" and not stay.open  # closed, kept for export
    assert [s.total for s in store.scale_scores(stay)] == [3]
    store.close()


def test_recordings_follow_the_stay_and_go_with_it(tmp_path):
    pytest.importorskip("pyedflib", reason="pyedflib (painmon[record]) not installed")
    base = default_config()
    config = base.model_copy(update={
        "state_dir": tmp_path, "face": base.face.model_copy(update={"enabled": False}),
        "recording": base.recording.model_copy(update={"enabled": True}),
        "care": base.care.model_copy(update={"retention_days": 0.0})})
    monitor = build_monitor(config, SteppedClock(), [])
    recorder = attach_recorder(config, monitor.pipeline, monitor.commands,
                               boot_id=monitor.envelope.boot_id, wall=monitor.wall)
    follow_stays(monitor, recorder)
    try:
        assert recorder.active and recorder.directory == tmp_path / "recordings"
        assert monitor.commands.handle("admit", b'{"reference": "enc-31"}')["ok"]
        stay_dir = tmp_path / "stays" / "1" / "recordings"
        assert recorder.directory == stay_dir and recorder.active
        monitor.pipeline.run_every_hop(3.0)
        assert monitor.commands.handle("discharge", b'{"reference": "enc-31"}')["ok"]
        assert recorder.directory == tmp_path / "recordings" and recorder.active
        events = "".join(p.read_text() for p in stay_dir.glob("*.events.jsonl"))
        assert '"stay":"enc-31"' in events and list(stay_dir.glob("*.edf"))
        monitor.clock.advance(1.0)
        monitor.bedside.purge()  # retention 0: the stay goes, its recordings with it
        assert not (tmp_path / "stays" / "1").exists()
    finally:
        recorder.stop()
        monitor.pipeline.stop()


def test_messages_carry_the_version_of_the_physio_model_the_device_runs():
    from models.hashing import sha256_of
    from models.physio.estimator import DEFAULT_MODEL

    from device.app.device import monitor_models

    config = default_config()
    config = config.model_copy(update={"face": config.face.model_copy(update={"enabled": False})})
    assert monitor_models(config) == f"{DEFAULT_MODEL.stem}@{sha256_of(DEFAULT_MODEL)[:12]}"
