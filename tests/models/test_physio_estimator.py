import json

import numpy as np
import pytest

from models.modality import ModalityEstimate
from models.physio.estimator import DEFAULT_MODEL, PhysioEstimator
from models.physio.features import SEQUENCE_STEPS, Baseline
from models.physio.inputs import INPUT_NAMES
from models.runtime import TFLiteModel
from sensors.types import SampleBlock
from tests.models import physio_signals as sig

PPG_HZ, EDA_HZ, ACC_HZ = 100.0, 8.0, 50.0


FLOAT_MODEL = DEFAULT_MODEL.with_name("physio_lstm_float.tflite")
# The device model's outputs may differ from the float32 model's by at most this much on any
# sequence (issue #20: one full-int8 output differed by 0.45).
PARITY = 0.05


def test_committed_device_model_runs_in_litert():
    assert DEFAULT_MODEL.stat().st_size <= 50 * 1024
    m = TFLiteModel(DEFAULT_MODEL, num_threads=1)
    assert m.input_shape() == (1, SEQUENCE_STEPS, len(INPUT_NAMES))
    assert m.inputs[0]["dtype"] == np.float32 and m.outputs[0]["dtype"] == np.float32
    ops = {op["op_name"] for op in m.interpreter._get_ops_details()}
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops
    assert not any(op.startswith("Flex") for op in ops)
    rng = np.random.default_rng(0)
    shape = (1, SEQUENCE_STEPS, len(INPUT_NAMES))
    outs = [m.run(rng.normal(0, 1, shape).astype(np.float32))[0].item() for _ in range(5)]
    assert all(0.0 <= p <= 1.0 for p in outs)


def _max_parity_gap(x: np.ndarray) -> float:
    from tools.physio.sequences import predict

    device = TFLiteModel(DEFAULT_MODEL, num_threads=1)
    reference = TFLiteModel(FLOAT_MODEL, num_threads=1)
    return float(np.max(np.abs(predict(device, x) - predict(reference, x))))


def test_device_model_matches_float_on_inputs_across_the_clipped_range():
    """Inputs spread over the whole +-6 the normalisation clips to, the device model within
    ``PARITY`` of the float32 model on each. A quick check only: the full-int8 model passes
    it (0.014) and fails on real sequences (0.46), which the data test below scores."""
    rng = np.random.default_rng(1)
    x = np.clip(rng.normal(0, 2.5, (200, SEQUENCE_STEPS, len(INPUT_NAMES))), -6, 6).astype(np.float32)
    assert _max_parity_gap(x) <= PARITY


def test_each_sequence_is_scored_from_a_clean_lstm_state():
    """TFLite keeps a fused LSTM's state between calls; a score must not depend on the
    sequence scored before it (as in training, where every sequence starts from zero)."""
    m = TFLiteModel(DEFAULT_MODEL, num_threads=1)
    shape = (1, SEQUENCE_STEPS, len(INPUT_NAMES))
    rest = np.zeros(shape, np.float32)
    fresh = m.run(rest)[0].item()
    for level in (6.0, -6.0, 3.0):
        m.run(np.full(shape, level, np.float32))
        assert m.run(rest)[0].item() == fresh, level


def _feed(est, seconds, t_s, *, hr, rmssd, amp, tonic, scr, motion, seed):
    """Feed ``seconds`` of signals in 1 s blocks; return the estimates and the end time."""
    p = sig.ppg(seconds, PPG_HZ, hr, rmssd, amp, seed=seed, polarity=-1) + 50000
    e = sig.eda(seconds, EDA_HZ, tonic, scr_per_min=scr, seed=seed)
    a = sig.accel(seconds, ACC_HZ, motion, seed=seed)
    out = []
    for k in range(seconds):
        t0 = int((t_s + k) * 1e9)
        out.append(est.update(
            ppg=SampleBlock("ppg_ir", PPG_HZ, t0, p[int(k * PPG_HZ):int((k + 1) * PPG_HZ)], "counts"),
            eda=SampleBlock("eda", EDA_HZ, t0, e[int(k * EDA_HZ):int((k + 1) * EDA_HZ)], "uS"),
            accel=[SampleBlock(f"accel_{ax}", ACC_HZ, t0, a[int(k * ACC_HZ):int((k + 1) * ACC_HZ), i], "g")
                   for i, ax in enumerate("xyz")]))
    return out, t_s + seconds


REST = dict(hr=64, rmssd=50, amp=300, tonic=2.0, scr=0, motion=0.004)
AROUSED = dict(hr=95, rmssd=15, amp=150, tonic=3.5, scr=8, motion=0.004)


@pytest.fixture(scope="module")
def calibrated():
    est = PhysioEstimator(ppg_polarity=-1)
    first, t = _feed(est, 150, 0, seed=1, **REST)
    baseline = est.calibrate(last_s=100)
    return est, first, t, baseline


def test_uncalibrated_estimates_are_flagged_and_less_confident(calibrated):
    _, first, _, _ = calibrated
    assert all(isinstance(e, ModalityEstimate) and e.modality == "physio" for e in first)
    assert first[0].score is None and "warming_up" in first[0].flags
    late = first[-1]
    assert "uncalibrated" in late.flags and late.score is not None
    assert late.confidence <= 0.4 + 1e-9
    assert abs(late.features["hr_bpm"] - 64) < 3


def test_arousal_scores_above_rest_after_calibration(calibrated):
    """A calibrated person at rest, then aroused: the score rises with the onset (the model
    reads the change from rest and against the minutes before)."""
    _, _, _, baseline = calibrated
    stored = Baseline.from_dict(json.loads(json.dumps(baseline.to_dict())))
    est = PhysioEstimator(baseline=stored, ppg_polarity=-1)
    rest, t = _feed(est, 150, 1000, seed=2, **REST)
    aroused, _ = _feed(est, 90, t, seed=3, **AROUSED)
    r, a = rest[-1], aroused[-1]
    assert "uncalibrated" not in r.flags and "warming_up" not in r.flags
    assert a.score > r.score + 2.0, (r.score, a.score)
    assert a.features["arousal_probability"] == pytest.approx(a.score / 10)
    assert r.confidence > 0.6 and a.confidence > 0.6
    assert a.features["hr_bpm"] > r.features["hr_bpm"] + 20
    json.dumps(a.to_dict())


def test_missing_eda_lowers_quality_and_is_flagged():
    est = PhysioEstimator()
    p = sig.ppg(40, PPG_HZ, 70, amplitude=100)
    for k in range(40):
        e = est.update(ppg=SampleBlock("ppg", PPG_HZ, k * 10**9, p[k * 100:(k + 1) * 100]))
    assert "no_eda" in e.flags and "no_accel" in e.flags
    assert e.quality <= 0.5
    assert est.process().flags[-1] == "no_new_data"


def test_bad_units_are_named():
    est = PhysioEstimator()
    with pytest.raises(ValueError, match="eda.*uS"):
        est.push(eda=SampleBlock("eda", 8, 0, np.ones(8), "kOhm"))
    with pytest.raises(ValueError, match="accel_x.*g"):
        est.push(accel=SampleBlock("accel_x", 50, 0, np.ones(50), "m/s2"))
    with pytest.raises(FileNotFoundError):
        PhysioEstimator(model_path="/nonexistent/physio.tflite")



@pytest.mark.data
def test_streaming_a_stress_predict_recording_gives_the_offline_scores(data_dir):
    """S05 (55 min) fed to the estimator in 1 s blocks, as the device does, scores each
    second as the offline toolchain scores the same minute (the model card's figures)."""
    from tools.physio.dataset import E4_ACC_PER_G, load_subject, read_e4_csv
    from tools.physio.sequences import subject_sequences

    folder = data_dir / "stress-predict" / "S05"
    if not folder.is_dir():
        pytest.skip(f"Stress-Predict not found under {data_dir}")
    subject = load_subject(folder)
    x, _, ends = subject_sequences(subject, SEQUENCE_STEPS, hop=1)
    model = TFLiteModel(DEFAULT_MODEL)
    offline = {int(e): model.run(seq[None])[0].item() for e, seq in zip(ends, x)}

    files = {name: read_e4_csv(folder / f"{name}.csv") for name in ("BVP", "EDA", "ACC")}

    def second(name: str, k: int) -> tuple[float, np.ndarray, int]:
        t0, rate, samples = files[name]
        lo = int(round((subject.t0_s - t0 + k) * rate))
        return rate, samples[lo:lo + int(rate)], round((subject.t0_s + k) * 1e9)

    est = PhysioEstimator(baseline=subject.baseline)
    live = {}
    for k in range(len(subject.values)):
        rate, bvp, t_ns = second("BVP", k)
        ppg = SampleBlock("ppg", rate, t_ns, bvp, "")
        rate, eda, t_ns = second("EDA", k)
        eda = SampleBlock("eda", rate, t_ns, eda, "uS")
        rate, acc, t_ns = second("ACC", k)
        xyz = [SampleBlock(f"acc_{a}", rate, t_ns, acc[:, i] / E4_ACC_PER_G, "g")
               for i, a in enumerate("xyz")]
        estimate = est.update(ppg=ppg, eda=eda, accel=xyz)
        if estimate.score is not None and "warming_up" not in estimate.flags:
            live[k] = estimate.score / 10
    both = sorted(set(live) & set(offline))
    assert len(both) > 0.9 * len(offline)
    diff = np.abs(np.array([live[k] for k in both]) - np.array([offline[k] for k in both]))
    assert np.median(diff) <= 0.02 and np.percentile(diff, 90) <= 0.1, np.percentile(diff, [50, 90, 99])


@pytest.mark.data
def test_device_model_matches_float_on_every_evaluated_sequence(data_dir):
    """Every Stress-Predict sequence the model card's evaluation scores (all subjects, one
    sequence per 5 s): the device model within ``PARITY`` of the float32 model on each."""
    from tools.physio.dataset import build
    from tools.physio.sequences import subject_sequences

    root = data_dir / "stress-predict"
    if not (root / "S05").is_dir():
        pytest.skip(f"Stress-Predict not found under {data_dir}")
    x = np.concatenate([subject_sequences(s, SEQUENCE_STEPS, hop=5)[0]
                        for s in build(root, progress=False)])
    assert len(x) > 15000
    assert _max_parity_gap(x) <= PARITY


def _feed_with_ecg(est, seconds, *, ecg_from_s=None, ecg_rmssd=60.0, t_s=0):
    """PPG (RMSSD 15 ms), EDA and x, y, z; an ECG (RMSSD ``ecg_rmssd``) from ``ecg_from_s``."""
    p = sig.ppg(seconds, PPG_HZ, 70, rmssd_ms=15, amplitude=300, polarity=-1, seed=4) + 50000
    e = sig.eda(seconds, EDA_HZ, 2.0, seed=4)
    a = sig.accel(seconds, ACC_HZ, 0.004, seed=4)
    ecg = sig.ecg(seconds, 250.0, 70, rmssd_ms=ecg_rmssd, seed=4)
    out = []
    for k in range(seconds):
        t0 = int((t_s + k) * 1e9)
        with_ecg = ecg_from_s is not None and k >= ecg_from_s
        out.append(est.update(
            ppg=SampleBlock("ppg_ir", PPG_HZ, t0, p[int(k * PPG_HZ):int((k + 1) * PPG_HZ)], "counts"),
            eda=SampleBlock("eda", EDA_HZ, t0, e[int(k * EDA_HZ):int((k + 1) * EDA_HZ)], "uS"),
            accel=[SampleBlock(f"accel_{ax}", ACC_HZ, t0, a[int(k * ACC_HZ):int((k + 1) * ACC_HZ), i], "g")
                   for i, ax in enumerate("xyz")],
            ecg=SampleBlock("ecg", 250.0, t0, ecg[k * 250:(k + 1) * 250], "mV") if with_ecg else None))
    return out


def test_an_ecg_feeds_the_beat_features_when_fitted_and_the_model_runs_without_it():
    """One model: with an ECG its R peaks give heart rate and RMSSD (here unlike the PPG's on
    purpose); without one, or before it covers the window, the PPG gives them; the estimate
    is made either way."""
    without = _feed_with_ecg(PhysioEstimator(ppg_polarity=-1), 100)
    fitted = _feed_with_ecg(PhysioEstimator(ppg_polarity=-1), 160, ecg_from_s=40)
    for e in without[-10:]:
        assert e.score is not None and e.features["beats_from_ecg"] == 0.0
        assert abs(e.features["hrv_rmssd_ms"] - 15) < 10, e.features["hrv_rmssd_ms"]
    assert fitted[60].features["beats_from_ecg"] == 0.0  # the lead is on, but not for a minute yet
    for e in fitted[-10:]:
        assert e.score is not None and e.features["beats_from_ecg"] == 1.0
        assert abs(e.features["hrv_rmssd_ms"] - 60) < 12, e.features["hrv_rmssd_ms"]
        assert abs(e.features["hr_bpm"] - 70) < 3


def test_the_device_stage_routes_the_ecg_and_the_axes_to_the_estimator():
    from device.processing.physio import PhysioStage

    stage = PhysioStage()
    pushed = []
    stage.estimator.push = lambda **kw: pushed.append(sorted(kw))
    blocks = [SampleBlock("ppg_ir", 100, 0, np.zeros(100), "counts"),
              SampleBlock("ecg", 250, 0, np.zeros(250), "mV"),
              SampleBlock("eda", 8, 0, np.ones(8), "uS")]
    blocks += [SampleBlock(f"acc_{a}", 50, 0, np.zeros(50), "g") for a in "xyz"]
    stage.push(blocks)
    assert sorted(map(tuple, pushed)) == [("accel",), ("ecg",), ("eda",), ("ppg",)]


def test_motion_cleaning_follows_what_the_model_was_trained_on(tmp_path):
    """The committed model was trained on beats from the uncleaned PPG, so the device reads
    them so too; a model whose .json says ``ppg_motion_clean`` gets them cleaned."""
    import shutil

    from models.physio.estimator import META_NAME

    assert PhysioEstimator().motion_clean is False
    for name in (DEFAULT_MODEL.name, META_NAME):
        shutil.copy(DEFAULT_MODEL.with_name(name), tmp_path / name)
    meta = json.loads((tmp_path / META_NAME).read_text())
    (tmp_path / META_NAME).write_text(json.dumps(meta | {"ppg_motion_clean": True}))
    est = PhysioEstimator(model_path=tmp_path / DEFAULT_MODEL.name, ppg_polarity=-1)
    assert est.motion_clean is True
    out = _feed_with_ecg(est, 70)
    assert out[-1].score is not None and abs(out[-1].features["hr_bpm"] - 70) < 3
    assert PhysioEstimator(motion_clean=True).motion_clean is True


def test_a_baseline_taken_with_the_other_beat_source_is_flagged():
    """Calibrated on PPG beats, then an ECG fitted: RMSSD from R peaks does not compare with a
    PPG rest level, so the estimate says so and is held to an uncalibrated one's confidence;
    the stored baseline remembers its source."""
    est = PhysioEstimator(ppg_polarity=-1)
    _feed_with_ecg(est, 100)
    baseline = est.calibrate(last_s=60)
    assert baseline.beats_from_ecg is False
    assert Baseline.from_dict(json.loads(json.dumps(baseline.to_dict()))) == baseline
    fitted = _feed_with_ecg(est, 160, ecg_from_s=0, t_s=100)
    assert "beat_source_changed" not in fitted[30].flags  # the ECG does not cover a minute yet
    last = fitted[-1]
    assert last.features["beats_from_ecg"] == 1.0 and "beat_source_changed" in last.flags
    assert last.confidence <= 0.4 + 1e-9
    assert Baseline.from_dict({"centers": {}, "n_steps": 5}).beats_from_ecg is None
