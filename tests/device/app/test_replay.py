"""Replay: the readers of every format, the replay board in the live pipeline, and the
round trip ``painmon demo --record`` -> ``painmon replay`` -> same estimates -> ``painmon report``."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from sensors.clock import SteppedClock
from sensors.types import SampleBlock
from tests.conftest import REPO

from device.app.replay import RecordedSensor, ReplayClock, chunks, run_replay
from device.recording.readers import open_recording

pytest.importorskip("pyedflib", reason="pyedflib (painmon[record]) not installed")

HR_BPM = 75.0


def write_e4(folder, seconds: float = 40.0, start_unix_s: float = 1_600_000_000.0) -> None:
    folder.mkdir()
    t = np.arange(0, seconds, 1 / 64)
    phase = 2 * np.pi * HR_BPM / 60 * t
    bvp = 40 * np.sin(phase) + 12 * np.sin(2 * phase + 0.8)  # systolic peak and a notch

    def csv(name, start, rate, rows):
        lines = [",".join([f"{start:.1f}"] * rows.shape[1]), ",".join([f"{rate:.1f}"] * rows.shape[1])]
        lines += [",".join(f"{v:.4f}" for v in row) for row in rows]
        (folder / name).write_text("\n".join(lines) + "\n")

    csv("BVP.csv", start_unix_s, 64, bvp[:, None])
    te = np.arange(0, seconds, 1 / 4)
    csv("EDA.csv", start_unix_s + 0.5, 4, (2.0 + 0.01 * te)[:, None])
    ta = np.arange(0, seconds, 1 / 32)
    csv("ACC.csv", start_unix_s, 32, np.stack([0 * ta, 0 * ta, 64 + 0 * ta], axis=1))


def test_e4_folder_maps_to_painmon_channels(tmp_path):
    write_e4(tmp_path / "e4", seconds=10)
    rec = open_recording(tmp_path / "e4")
    assert rec.source == "e4"
    assert sorted(rec.blocks) == ["acc_x", "acc_y", "acc_z", "eda", "ppg_green"]
    eda = rec.blocks["eda"][0]
    assert (eda.rate_hz, eda.unit, eda.t0_ns) == (4.0, "uS", 500_000_000)
    assert rec.blocks["acc_z"][0].samples == pytest.approx(np.ones(320))  # 64 counts = 1 g
    assert rec.blocks["ppg_green"][0].rate_hz == 64.0


def test_spc2015_layouts_and_a_bad_file(tmp_path):
    from scipy.io import savemat

    sig = np.arange(6 * 250, dtype=float).reshape(6, 250)
    savemat(tmp_path / "DATA_01_TYPE01.mat", {"sig": sig})
    rec = open_recording(tmp_path / "DATA_01_TYPE01.mat")
    assert sorted(rec.blocks) == ["acc_x", "acc_y", "acc_z", "ecg", "ppg_green"]
    assert rec.blocks["ecg"][0].samples == pytest.approx(sig[0])
    assert rec.blocks["acc_z"][0].samples == pytest.approx(sig[5])
    assert rec.blocks["ppg_green"][0].rate_hz == 125.0
    savemat(tmp_path / "TEST_S01_T01.mat", {"sig": sig[1:]})
    assert "ecg" not in open_recording(tmp_path / "TEST_S01_T01.mat").blocks
    savemat(tmp_path / "bad.mat", {"sig": sig[:3]})
    with pytest.raises(ValueError, match="bad.mat.*6 x N"):
        open_recording(tmp_path / "bad.mat")


def test_a_device_without_scipy_names_the_extra_for_mat_files(tmp_path, monkeypatch):
    from scipy.io import savemat

    savemat(tmp_path / "DATA_01_TYPE01.mat", {"sig": np.zeros((6, 10))})
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # import fails as where scipy is absent
    with pytest.raises(ValueError, match=r"needs scipy.*painmon\[replay\]"):
        open_recording(tmp_path / "DATA_01_TYPE01.mat")


def test_unknown_paths_are_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        open_recording(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        open_recording(tmp_path / "notes.txt")


@pytest.mark.data
def test_wfdb_and_spc_from_the_shared_data(data_dir):
    pytest.importorskip("wfdb")
    ecg = open_recording(data_dir / "mitbih" / "100").blocks["ecg"][0]
    assert ecg.rate_hz == 360.0 and len(ecg) == 650_000 and ecg.unit == "mV"
    assert 0.5 < np.percentile(ecg.samples, 99.9) - np.median(ecg.samples) < 5  # R waves in mV
    spc = open_recording(data_dir / "spc2015" / "DATA_01_TYPE01.mat")
    assert len(spc.blocks["ppg_green"][0]) == len(spc.blocks["ecg"][0]) > 125 * 200


def test_recorded_sensor_emits_blocks_once_the_clock_passes_them():
    clock = SteppedClock()
    block = SampleBlock("ppg_red", 100.0, 0, np.arange(100.0), "counts")
    assert [len(c) for c in chunks(block, 0.3)] == [30, 30, 30, 10]
    sensor = RecordedSensor([block], clock, chunk_s=0.25)
    assert sensor.poll() == [] and sensor.next_due_ns() == 250_000_000
    clock.advance(0.6)
    got = sensor.poll()
    assert [c.t0_ns for c in got] == [0, 250_000_000]
    assert np.concatenate([c.samples for c in got]) == pytest.approx(np.arange(50.0))
    clock.advance(1.0)
    assert len(sensor.poll()) == 2 and sensor.finished
    clock.advance_to(2_000_000_000)
    assert clock.now_ns() == 2_000_000_000
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(1_999_999_999)


def test_replay_clock_rebases():
    clock = ReplayClock(speed=100.0, start_ns=5_000_000_000)
    assert 5_000_000_000 <= clock.now_ns() < 6_000_000_000
    clock.rebase(-1)
    assert clock.now_ns() < 1_000_000_000
    with pytest.raises(ValueError, match="speed"):
        ReplayClock(speed=0)


def test_e4_replay_through_the_live_pipeline(tmp_path, mosquitto, mqtt_probe):
    write_e4(tmp_path / "e4")
    probe = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/painmon-demo/vitals")
    seen: list[dict] = []
    run_replay(str(tmp_path / "e4"), speed=4.0, broker=f"{mosquitto.host}:{mosquitto.port}",
               outputs=[lambda topic, m: seen.append(m) if topic == "vitals" else None],
               quiet=True)
    assert 38 <= len(seen) <= 41
    late = [m for m in seen[15:] if m["hr_bpm"]["ppg"] is not None]
    assert len(late) >= 15, seen[15:]
    assert np.median([m["hr_bpm"]["ppg"] for m in late]) == pytest.approx(HR_BPM, abs=2.0)
    assert {m["sensors"]["ppg"]["state"] for m in seen} == {"ok"}
    probe.wait_for(lambda m: m.json()["seq"] == seen[-1]["seq"], timeout=10)


def _envelope_free(message: dict) -> dict:
    return {k: v for k, v in message.items() if k not in ("seq", "t", "boot_id", "t_synced")}


def test_exact_replay_runs_every_hop_and_repeats_itself(tmp_path, mosquitto):
    """However slow the machine (here an output taking 30 ms a message, three per hop, for
    a 1 s hop replayed far faster than real time), an exact replay runs every hop of the
    recording in order, and a second run publishes the same vitals and pain estimates."""
    write_e4(tmp_path / "e4")
    broker = f"{mosquitto.host}:{mosquitto.port}"

    def replay(**how) -> list[tuple[str, dict]]:
        seen: list[tuple[str, dict]] = []

        def slow(topic: str, message: dict) -> None:
            time.sleep(0.03)
            seen.append((topic, message))

        run_replay(str(tmp_path / "e4"), broker=broker, outputs=[slow], quiet=True, **how)
        return seen

    # On the replay clock at x40 the same slow output makes the pipeline skip hops.
    paced = replay(speed=40.0)
    assert len([m for topic, m in paced if topic == "vitals"]) < 30
    first, again = replay(exact=True), replay(exact=True)
    hops = [m["replay"]["t_ns"] for topic, m in first if topic == "vitals"]
    # One hop a second from 1 s in, to past the last sample (the EDA runs to 40.5 s).
    assert len(hops) == 41 and np.all(np.diff(hops) == 1_000_000_000), hops
    assert [m["seq"] for topic, m in first if topic == "vitals"] == sorted(
        m["seq"] for topic, m in first if topic == "vitals")
    kept = ("vitals", "pain")
    assert ([(t, _envelope_free(m)) for t, m in first if t in kept]
            == [(t, _envelope_free(m)) for t, m in again if t in kept])
    late = [m["hr_bpm"]["ppg"] for topic, m in first[45:] if topic == "vitals"]
    assert None not in late and np.median(late) == pytest.approx(HR_BPM, abs=2.0)


def test_replay_cli_names_what_is_wrong(tmp_path):
    write_e4(tmp_path / "e4")
    for args, expected in ((["--exact", "--speed", "2"], "not both"),
                           (["--speed", "0"], "--speed must be > 0")):
        run = subprocess.run([sys.executable, "-m", "device.cli", "replay", str(tmp_path / "e4"),
                              *args], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and expected in run.stderr, run.stderr


def _noface_config(tmp_path) -> str:
    path = tmp_path / "painmon.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[face]\nenabled = false\n'
                    '[simulator]\nscenario = "rest"\nseed = 5\n')
    return str(path)


def _same_estimates_as_live(recorded: list[dict], live_t: np.ndarray, replayed: list[dict]) -> None:
    """Each replayed message says where on the recording it was made: pair it with the live
    message of the same hop (a loaded machine may make the live run skip a hop)."""
    pairs = {"hr_ppg": [], "eda": []}
    for again in replayed:
        i = int(np.argmin(np.abs(live_t - again["replay"]["t_ns"])))
        if abs(live_t[i] - again["replay"]["t_ns"]) > 0.5e9:
            continue
        live = recorded[i]
        if live["hr_bpm"]["ppg"] is not None and again["hr_bpm"]["ppg"] is not None:
            pairs["hr_ppg"].append((live["hr_bpm"]["ppg"], again["hr_bpm"]["ppg"]))
        if live["eda_us"] is not None and again["eda_us"] is not None:
            pairs["eda"].append((live["eda_us"], again["eda_us"]))
    # Where the live run had a value the replay has one too (a loaded machine can make the live
    # emulated chips miss samples: those gaps are recorded and replayed as gaps).
    assert len(pairs["hr_ppg"]) >= 5 and len(pairs["eda"]) >= 8, pairs
    hr = np.array(pairs["hr_ppg"])
    assert np.median(np.abs(hr[:, 0] - hr[:, 1])) <= 1.0 and np.abs(hr[:, 0] - hr[:, 1]).max() <= 4.0
    eda = np.array(pairs["eda"])
    assert np.abs(eda[:, 0] - eda[:, 1]).max() <= 0.05


def test_demo_record_replays_into_the_same_estimates_and_renders(tmp_path, mosquitto, mqtt_probe):
    config, rec_dir = _noface_config(tmp_path), tmp_path / "rec"
    broker = f"{mosquitto.host}:{mosquitto.port}"
    demo = subprocess.run(check=False, args=[sys.executable, "-m", "device.cli", "demo", "--seconds", "30",
                           "--speed", "1.5", "--broker", broker, "--config", config,
                           "--record", str(rec_dir)], cwd=REPO, capture_output=True,
                          text=True, timeout=180)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    recorded = [e["message"] for e in open_recording(rec_dir).messages("vitals")]
    assert len(recorded) >= 25

    probe = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/painmon-demo/vitals")
    live_t = np.array([e["t_ns"] for e in open_recording(rec_dir).messages("vitals")])
    boots: set[str] = set()
    for how in (["--speed", "4"], ["--exact"]):
        replay = subprocess.run(check=False, args=[sys.executable, "-m", "device.cli", "replay",
                                                   str(rec_dir), *how, "--broker", broker,
                                                   "--config", config],
                                cwd=REPO, capture_output=True, text=True, timeout=180)
        assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
        replayed = [m.json() for m in probe.messages if m.json()["boot_id"] not in boots]
        boots |= {m["boot_id"] for m in replayed}
        # An exact replay runs every hop; on the replay clock a loaded machine may skip some.
        least = len(recorded) - 1 if how == ["--exact"] else 0.8 * len(recorded)
        assert len(replayed) >= least, (how, len(replayed), len(recorded))
        _same_estimates_as_live(recorded, live_t, replayed)

    for name in ("session.png", "session.pdf"):
        report = subprocess.run(check=False, args=[sys.executable, "-m", "device.cli", "report", str(rec_dir),
                                 "--out", str(tmp_path / name)], cwd=REPO, capture_output=True,
                                text=True, timeout=120)
        assert report.returncode == 0, report.stderr
        head = (tmp_path / name).read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if name.endswith("png") else b"%PDF")
    events = (next(rec_dir.glob("*.events.jsonl"))).read_text().splitlines()
    assert json.loads(events[0])["message"]["event"] == "segment_start"
