"""The benchmarks run end to end on tiny inputs and print a table then one JSON line."""

import json

import numpy as np
import pytest
from scipy.io import savemat

from tools.bench import hr_motion, physio_speed, rpeaks
from tools.datasets import shared_data_dir


def _last_json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) >= 3  # a table before the JSON line
    return json.loads(out[-1])


def test_hr_motion_smoke(tmp_path, capsys):
    fs, seconds, hr = 125.0, 24.0, 84.0
    t = np.arange(round(seconds * fs)) / fs
    ppg = np.sin(2 * np.pi * hr / 60 * t)
    acc = 0.01 * np.random.default_rng(0).standard_normal((3, t.size))
    savemat(tmp_path / "DATA_01_TYPE01.mat", {"sig": np.vstack([np.zeros(t.size), ppg, ppg, acc])})
    savemat(tmp_path / "DATA_01_TYPE01_BPMtrace.mat", {"BPM0": np.full((9, 1), hr)})
    hr_motion.main(["--data", str(tmp_path)])
    out = _last_json(capsys)
    assert out["bench"] == "hr_motion"
    assert out["results"]["painmon"]["mae_bpm"] < 2.0
    assert set(out["results"]) >= {"painmon", "neurokit2", "heartpy"}
    # With a second recording, the ridge can be chosen without each one in turn.
    savemat(tmp_path / "DATA_02_TYPE02.mat", {"sig": np.vstack([np.zeros(t.size), -ppg, -ppg, acc])})
    savemat(tmp_path / "DATA_02_TYPE02_BPMtrace.mat", {"BPM0": np.full((9, 1), hr)})
    hr_motion.main(["--data", str(tmp_path), "--loo"])
    loo = _last_json(capsys)["results"]["painmon"]["ridge_leave_one_out"]
    assert set(loo["per_recording"]) == {"DATA_01_TYPE01", "DATA_02_TYPE02"}
    assert loo["mae_bpm"] < 2.0
    assert len(loo["in_sample_mae_bpm"]) == len(hr_motion.LOO_RIDGES)


def test_rpeaks_smoke(capsys):
    root = shared_data_dir()
    if root is None or not (root / "mitbih").is_dir():
        pytest.skip("MIT-BIH record not found (set PAINMON_DATA)")
    rpeaks.main(["--data", str(root / "mitbih"), "--seconds", "20"])
    out = _last_json(capsys)
    assert out["results"]["painmon"]["f1"] >= 0.95
    assert "f1" in out["results"]["neurokit2"] or "error" in out["results"]["neurokit2"]


def test_rpeaks_matching():
    m = rpeaks.match(np.array([1.0, 2.01, 3.2]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 2)


def test_physio_speed_smoke(capsys):
    physio_speed.main(["--minutes", "0.25", "--repeats", "1"])
    out = _last_json(capsys)
    assert out["results"]["painmon"]["realtime_factor"] > 1
    for peer in ("neurokit2", "neurokit2_batch", "neurokit2_process"):
        assert "realtime_factor" in out["results"][peer] or "error" in out["results"][peer]
    if "realtime_factor" in out["results"]["neurokit2"]:
        assert out["results"]["painmon"]["ratio_to_neurokit2"] > 0


def test_face_nonpain_smoke(face_model_dir, capsys):
    from tools.bench import face_nonpain

    # the two photos installed with the test extras: no download
    assert face_nonpain.main(["--only", "astronaut,grace_hopper", "--model-dir", str(face_model_dir)]) == 0
    out = _last_json(capsys)
    assert out["bench"] == "face_nonpain"
    assert set(out["results"]) == {"painmon", "plain_pspi_one_frame"}
    assert out["results"]["painmon"]["n_faces"] == 2
    # the peer reads both smiles as pain; painmon not the astronaut's
    assert out["results"]["plain_pspi_one_frame"]["share_below_mild"] == 0.0
    assert out["results"]["painmon"]["share_below_mild"] >= 0.5
    assert face_nonpain.main(["--only", "nobody"]) == 1
