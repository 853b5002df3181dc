import json
import os
from pathlib import Path

import numpy as np
import pytest

from models.physio.inputs import INPUT_NAMES
from tests.models import physio_signals as sig
from tools.physio import dataset

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000
SEGMENTS = [(240, False), (100, True), (100, False), (100, True), (60, False)]


def _data_dir() -> Path:
    return Path(os.environ.get("PAINMON_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def e4_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("e4")
    for k, name in enumerate(("S90", "S91")):
        sig.write_e4_subject(root / name, T0 + 10_000 * k, SEGMENTS, seed=k)
    return root


def test_builder_labels_from_tags(e4_folder):
    s = dataset.load_subject(e4_folder / "S90")
    assert len(s.labels) == sum(d for d, _ in SEGMENTS)
    assert (s.labels[245:335] == 1).all() and (s.labels[100:235] == 0).all()
    assert (s.labels[345:435] == 0).all() and (s.labels[445:535] == 1).all()
    # After the last press the protocol is unknown.
    assert (s.labels[545:] == -1).all()
    assert abs(s.baseline.centers["hr_bpm"] - 66) < 2
    assert abs(np.nanmedian(s.values[250:335, 0]) - 92) < 3


def test_builder_prefers_a_labels_csv(tmp_path):
    folder = tmp_path / "S07"
    sig.write_e4_subject(folder, T0, [(200, False), (60, True)], seed=7)
    t = T0 + np.arange(0, 260)
    lab = (t >= T0 + 150).astype(int)  # deliberately unlike the tags
    rows = "\n".join(f"7,70,12,{ti},{li}" for ti, li in zip(t, lab))
    (tmp_path / "labels_hr_resp_S01-S25.csv").write_text(
        "Participant,HR,respr,Time(sec),Label\n" + rows + "\n8,70,12,0,1\n")
    s = dataset.load_subject(folder)
    np.testing.assert_array_equal(s.labels[:260], lab)


def test_builder_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no E4 subject folders"):
        dataset.subject_folders(tmp_path)
    with pytest.raises(FileNotFoundError, match="S42"):
        dataset.subject_folders(tmp_path, ["S42"])


def test_steps_npz_round_trip(e4_folder, tmp_path):
    subjects = dataset.build(e4_folder, progress=False)
    dataset.save_steps(subjects, tmp_path / "steps.npz")
    again = dataset.load_steps(tmp_path / "steps.npz")
    assert [s.subject for s in again] == ["S90", "S91"]
    np.testing.assert_array_equal(again[1].labels, subjects[1].labels)
    assert again[0].baseline == subjects[0].baseline
    assert dataset.motion_cleaned(tmp_path / "steps.npz") is False
    cleaned = dataset.build(e4_folder, ["S90"], progress=False, motion_clean=True)
    dataset.save_steps(cleaned, tmp_path / "clean.npz", motion_clean=True)
    assert dataset.motion_cleaned(tmp_path / "clean.npz") is True
    assert [s.subject for s in dataset.load_steps(tmp_path / "clean.npz")] == ["S90"]


def test_training_path_tiny_slice(e4_folder, tmp_path):
    """Train a few batches, cross-validate every TFLite variant, write the float32 reference
    and the device model, and every variant on request; each loads in LiteRT."""
    import importlib.util

    for name in ("tensorflow", "tf_keras"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} not installed: pip install -e .[train]")
    from models.runtime import TFLiteModel
    from tools.physio import convert, quantize, train

    out, variants = tmp_path / "model", tmp_path / "variants"
    train.main(["--data", str(e4_folder), "--out", str(out), "--folds", "2", "--epochs", "1",
                "--max-batches", "3", "--units", "8", "--hop", "10", "--eval-hop", "30",
                "--variants-out", str(variants), "--no-progress"])
    meta = json.loads((out / "physio_lstm.json").read_text())
    assert meta["training_subjects"] == ["S90", "S91"]
    assert meta["ppg_motion_clean"] is False
    assert meta["device_model"] == convert.VARIANT_NAMES[convert.DEVICE_VARIANT]
    cv = meta["cross_validation"]
    assert set(cv["per_subject"]) == {"S90", "S91"}
    assert set(cv["parity_vs_float32"]) == set(convert.VARIANTS)
    assert cv["parity_vs_float32"]["float32"]["max_abs_diff"] == 0.0
    assert sorted(p.name for p in out.glob("*.tflite")) == sorted(
        {convert.FLOAT_NAME, convert.VARIANT_NAMES[convert.DEVICE_VARIANT]})
    assert sorted(p.name for p in variants.glob("*.tflite")) == sorted(convert.VARIANT_NAMES.values())
    assert quantize.FILE_NAMES == convert.VARIANT_NAMES
    int8 = TFLiteModel(variants / convert.INT8_NAME)
    flt = TFLiteModel(out / convert.FLOAT_NAME)
    assert int8.inputs[0]["dtype"] == np.int8 and flt.inputs[0]["dtype"] == np.float32
    assert TFLiteModel(variants / convert.VARIANT_NAMES["float16"]).inputs[0]["dtype"] == np.float32
    ops = {op["op_name"] for op in int8.interpreter._get_ops_details()}
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops
    x = np.random.default_rng(0).normal(0, 1, (1, 60, len(INPUT_NAMES))).astype(np.float32)
    assert abs(int8.run(x)[0].item() - flt.run(x)[0].item()) < 0.1
    measured = quantize.measure(variants, meta=out / "physio_lstm.json", repeats=20)["variants"]
    assert set(measured) == set(convert.VARIANTS)
    assert all(r["ms_median"] > 0 and r["size_kb"] > 0 and "out_of_subject" in r
               for r in measured.values())


def test_evaluate_smoke_prints_json_last(e4_folder, capsys):
    pytest.importorskip("sklearn", reason="scikit-learn not installed: pip install -e .[train]")
    from tools import evaluate_physio

    evaluate_physio.main(["--data", str(e4_folder), "--hop", "20", "--folds", "2", "--no-progress"])
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["bench"] == "physio"
    ours = result["results"]["painmon"]
    assert set(ours["per_subject"]) == {"S90", "S91"}
    assert 0.0 <= ours["auroc"] <= 1.0 and ours["ms_median"] > 0 and ours["size_kb"] <= 50
    assert "auroc" in result["results"]["logreg"]
    # Synthetic arousal is plain: the committed model must see it.
    assert ours["auroc"] > 0.8


@pytest.mark.data
def test_stress_predict_labels_match_the_label_file():
    root = _data_dir() / "stress-predict"
    if not (root / "S05").is_dir():
        pytest.skip(f"Stress-Predict not found under {root} (set PAINMON_DATA)")
    s = dataset.load_subject(root / "S05")
    assert int((s.labels == 1).sum()) == 1112 and int((s.labels == 0).sum()) == 2155
    assert np.isfinite(s.values[s.labels >= 0, 0]).mean() > 0.95
    s01 = dataset.load_subject(root / "S01")  # not in the label file: labelled from tags
    assert 900 < int((s01.labels == 1).sum()) < 1100


def test_biovid_loader_on_a_synthetic_part_a_layout(tmp_path):
    from tools.physio import biovid

    folder = tmp_path / "071309_w_21"
    folder.mkdir()
    n = int(5.5 * 512)
    for k, (cls, hr, gsr) in enumerate([("BL1", 65, 2.0)] * 12 + [("PA4", 95, 3.0)] * 4
                                        + [("PA1", 70, 2.1)] * 2):
        ecg = sig.ppg(5.5, 512, hr, seed=k)
        ecg = np.convolve(ecg, [1, -1], mode="same")  # sharp R-like spikes
        data = np.column_stack([np.arange(n) * 1953, np.full(n, gsr), ecg, np.zeros((n, 3))])
        header = "time\tgsr\tecg\temg_trapezius\temg_corrugator\temg_zygomaticus\n"
        with open(folder / f"071309_w_21-{cls}-{k:03d}_bio.csv", "w") as f:
            f.write(header)
            np.savetxt(f, data, delimiter="\t")
    x, y = biovid.load_subject(folder)
    assert x.shape == (18, 5, len(INPUT_NAMES)) and list(y).count(1) == 4 and list(y).count(-1) == 2
    col = {name: i for i, name in enumerate(INPUT_NAMES)}
    assert np.all(x[y == 1, -1, col["eda_tonic_us"]] > 0.5)  # higher conductance than at BL1
    assert x[y == 1, :, col["hr_bpm"]].mean() > x[y == 0, :, col["hr_bpm"]].mean() + 1
    for unmeasured in ("ppg_amp", "motion_g", "resp_rate_brpm", "hr_bpm_change_10min",
                       "hr_bpm_change_20min"):
        assert np.all(x[:, :, col[unmeasured]] == 0), unmeasured
    with pytest.raises(FileNotFoundError, match="no BioVid"):
        biovid.load_subject(tmp_path)


def test_settled_protocol_leaves_out_the_first_seconds_after_each_label_change():
    from tools.physio.sequences import settled

    labels = np.array([0] * 100 + [1] * 50 + [0] * 50)
    ends = np.arange(200)
    keep = settled(labels, ends, settle_s=20)
    assert keep[20:100].all() and not keep[100:120].any() and keep[120:150].all()
    assert not keep[150:170].any() and keep[170:].all()
    assert not keep[:20].any()  # the recording's start counts as a change too


def test_breakdown_by_task_and_by_time_since_the_label_changed():
    from tools.physio.breakdown import breakdown, label_runs

    labels = np.array([-1] * 5 + [0] * 100 + [1] * 50 + [0] * 60 + [1] * 40 + [0] * 45, np.int8)
    starts, names = label_runs(labels)
    assert list(starts) == [0, 5, 105, 155, 215, 255]
    assert names == ["unlabelled", "rest 0", "Stroop", "rest 1", "interview", "rest 2"]
    subject = dataset.SubjectSteps("S01", 0.0, np.zeros((len(labels), 10)), np.ones(len(labels)),
                                   labels, None)
    ends = np.arange(60, len(labels), 5)
    y = labels[ends]
    # A model that knows the label once 20 s have passed in each run, and is wrong before.
    since = ends - starts[np.searchsorted(starts, ends, side="right") - 1]
    p = np.where(since >= 20, y, 1 - y).astype(float)
    rows = {name: (value, n) for name, value, n in breakdown(
        {"S01/ends": ends, "S01/y": y, "S01/device": p}, [subject])}
    assert rows["sequences ending 0-20 s into their run"][0] == 0.0
    assert rows["sequences ending > 180 s into their run"] == (None, 0)
    assert rows["sequences ending 20-60 s into their run"][0] == 1.0
    assert rows["interview vs the rest before the tasks"][1] == 8 + 9  # 40 s and 45 s of ends
    assert rows["hyperventilation vs the rest before the tasks"] == (None, 9)


def test_truncated_histories_are_what_a_device_switched_on_later_would_see(e4_folder):
    """``truncate`` cuts a training sequence's history at a random start: its inputs are then
    exactly what ``model_inputs`` gives on the values from that start, the rest-relative
    features unchanged and the change inputs computed over the shorter history."""
    from models.physio.inputs import model_inputs
    from tools.physio.sequences import subject_sequences

    s = dataset.load_subject(e4_folder / "S90")
    full, y, ends = subject_sequences(s, 60, hop=7)
    cut, y_cut, ends_cut = subject_sequences(s, 60, hop=7, truncate=1.0,
                                             rng=np.random.default_rng(3))
    np.testing.assert_array_equal(ends_cut, ends)
    np.testing.assert_array_equal(y_cut, y)
    n = len(dataset.FEATURE_NAMES)
    np.testing.assert_allclose(cut[:, :, :n], full[:, :, :n], atol=1e-6)
    changed = np.flatnonzero(np.abs(cut - full).max(axis=(1, 2)) > 1e-3)
    assert len(changed) > len(ends) // 2
    # Each cut sequence is the device's view from some start step within its history.
    for i in changed[:5]:
        e = ends[i]
        assert any(np.allclose(model_inputs(s.baseline, s.values[start:e + 1])[-60:], cut[i],
                               atol=1e-5)
                   for start in range(max(e - 1259, 0), e - 58))
