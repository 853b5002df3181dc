"""``painmon admit``, ``painad``, ``analgesia``, ``discharge`` against a running device through
a real broker: each a command the device validates and answers."""

from __future__ import annotations

import json

from sensors.clock import SteppedClock
from tests.device.mqtt_helpers import device_config

from device.app.device import mqtt_output
from device.app.root import build_monitor
from device.care.stay import StayStore
from device.cli import main as cli_main
from device.comms.link import MqttLink


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
