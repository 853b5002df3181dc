"""Loaders: SPC 2015 in both layouts, WFDB, Empatica E4 folders; clear errors on bad input."""

import numpy as np
import pytest
from scipy.io import savemat

from tools.datasets import (
    find_spc_recordings,
    find_wfdb_records,
    load_e4_folder,
    load_spc_recording,
    load_wfdb_record,
    shared_data_dir,
)


def test_spc_training_and_test_layouts(tmp_path):
    rng = np.random.default_rng(0)
    n = 125 * 20
    savemat(tmp_path / "DATA_01_TYPE01.mat", {"sig": rng.standard_normal((6, n))})
    savemat(tmp_path / "DATA_01_TYPE01_BPMtrace.mat", {"BPM0": np.arange(7.0)[:, None]})
    savemat(tmp_path / "TEST_S02_T01.mat", {"sig": rng.standard_normal((5, n))})
    savemat(tmp_path / "True_S02_T01.mat", {"BPM0": np.arange(9.0)[:, None]})
    paths = find_spc_recordings(tmp_path)
    assert [p.name for p in paths] == ["DATA_01_TYPE01.mat", "TEST_S02_T01.mat"]
    train, test = (load_spc_recording(p) for p in paths)
    assert train.ppg.shape == (2, n) and train.acc.shape == (3, n) and train.ecg.shape == (n,)
    assert test.ecg is None and test.ppg.shape == (2, n)
    assert train.n_windows == 7  # (20 - 8) / 2 + 1 windows fit and 7 references
    assert test.n_windows == 7
    # A data root with the recordings one folder down (../shared/data/spc2015) finds them too.
    nested = tmp_path / "root" / "spc2015"
    nested.mkdir(parents=True)
    for p in tmp_path.glob("*.mat"):
        p.rename(nested / p.name)
    assert [p.name for p in find_spc_recordings(tmp_path / "root")] == [p.name for p in paths]


def test_spc_errors_name_the_problem(tmp_path):
    savemat(tmp_path / "DATA_02_TYPE02.mat", {"sig": np.zeros((5, 10))})
    with pytest.raises(ValueError, match="6 x N"):
        load_spc_recording(tmp_path / "DATA_02_TYPE02.mat")
    savemat(tmp_path / "DATA_03_TYPE02.mat", {"sig": np.zeros((6, 10))})
    with pytest.raises(ValueError, match="BPMtrace.mat is missing"):
        load_spc_recording(tmp_path / "DATA_03_TYPE02.mat")
    with pytest.raises(ValueError, match="not an SPC 2015 file name"):
        load_spc_recording(tmp_path / "other.mat")
    with pytest.raises(ValueError, match="does not exist"):
        find_spc_recordings(tmp_path / "missing")


def test_e4_folder(tmp_path):
    (tmp_path / "BVP.csv").write_text("1644226061\n64\n" + "\n".join(str(float(i)) for i in range(128)))
    (tmp_path / "EDA.csv").write_text("1644226061.0\n4.0\n0.5\n0.6\n0.7\n")
    (tmp_path / "ACC.csv").write_text("1644226061.0, 1644226061.0, 1644226061.0\n32.0, 32.0, 32.0\n64,0,-64\n32,32,0\n")
    (tmp_path / "IBI.csv").write_text("1644226061.0, IBI\n1.5,0.8\n2.3,0.8\n")
    (tmp_path / "tags_S01.csv").write_text("1644226140\n1644226435\n")
    rec = load_e4_folder(tmp_path)
    assert rec.channels["BVP"].rate_hz == 64 and rec.channels["BVP"].samples.size == 128
    np.testing.assert_allclose(rec.channels["ACC"].samples[0], [1.0, 0.0, -1.0])
    np.testing.assert_allclose(rec.channels["EDA"].samples, [0.5, 0.6, 0.7])
    assert rec.ibi.shape == (2, 2) and rec.tags_unix_s.size == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="none of BVP"):
        load_e4_folder(empty)


def test_real_recordings_when_present():
    root = shared_data_dir()
    if root is None:
        pytest.skip("shared data not found (set PAINMON_DATA)")
    rec = load_spc_recording(root / "spc2015" / "DATA_01_TYPE01.mat")
    assert rec.n_windows == 148 and rec.rate_hz == 125.0
    mit = load_wfdb_record(find_wfdb_records(root / "mitbih")[0])
    assert mit.rate_hz == 360 and mit.beats_s.size == 2273 and mit.signal.shape[1] == 2
    e4 = load_e4_folder(root / "stress-predict" / "S01")
    assert e4.channels["BVP"].rate_hz == 64 and e4.channels["ACC"].samples.shape[1] == 3
