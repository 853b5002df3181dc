"""The UNBC-McMaster loader, ``tools.evaluate_face`` and ``tools.refit_face`` on a tiny folder in
the archive's layout, made here from the demo photo grimacing (sensors.emulated.expression) with labels
that follow the grimace's intensity."""

import json

import numpy as np
import pytest

from models.face import action_units as au
from sensors.emulated.expression import FacePoints, PainExpression
from sensors.emulated.photo import astronaut_photo
from tools import evaluate_face, refit_face, unbc

INTENSITIES = (0.0, 0.0, 0.0, 0.0, 0.35, 0.7, 1.0, 0.7, 0.35, 0.0)


def _labels(intensity):
    """What a coder might have coded for this grimace: AUs rise with intensity."""
    level = round(5 * intensity)
    aus = {"au4": level, "au6": max(0, level - 1), "au7": level, "au9": 0, "au10": max(0, level - 1)}
    pspi = aus["au4"] + max(aus["au6"], aus["au7"]) + max(aus["au9"], aus["au10"])
    return float(pspi), {k: float(v) for k, v in aus.items()}


@pytest.fixture(scope="module")
def unbc_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("unbc")
    photo = astronaut_photo()
    expression = PainExpression(FacePoints.astronaut())
    for subject, shift, gain in (("042-ll042", 0, 1.0), ("064-ak064", 24, 0.85)):
        seq = subject.split("-")[1] + "t1aaaff"
        for k, intensity in enumerate(INTENSITIES):
            image = expression.apply(photo, intensity)
            # the second "person": the face elsewhere in the frame and in dimmer light
            image = np.clip(np.roll(image, (shift, -shift), axis=(0, 1)) * gain, 0, 255).astype(np.uint8)
            pspi, aus = _labels(intensity)
            unbc.write_frame(root, subject, seq, f"{seq}{k + 1:03d}", image, pspi, aus)
    return root


@pytest.fixture(scope="module")
def readings(unbc_dir, face_model_dir):
    return evaluate_face.measure(unbc.load(unbc_dir), face_model_dir)


def test_loader_reads_the_layout(unbc_dir):
    data = unbc.load(unbc_dir)
    assert data.subjects() == ["042-ll042", "064-ak064"]
    assert len(data.frames) == 2 * len(INTENSITIES) and not data.unlabelled
    peak = next(f for f in data.frames if f.frame == "ll042t1aaaff007")
    assert (peak.pspi, peak.aus["au4"], peak.aus.get("au9", 0.0)) == (_labels(1.0)[0], 5.0, 0.0)
    assert [f.frame for f in data.sequences()[("042-ll042", "ll042t1aaaff")]] == \
        [f"ll042t1aaaff{k:03d}" for k in range(1, 11)]


def test_loader_errors_name_the_file(unbc_dir, tmp_path):
    with pytest.raises(ValueError, match="Images"):
        unbc.load(tmp_path)
    bad = tmp_path / "Frame_Labels" / "PSPI" / "s" / "q" / "q001_facs.txt"
    bad.parent.mkdir(parents=True)
    bad.write_text("not a number\n")
    img = tmp_path / "Images" / "s" / "q" / "q001.png"
    img.parent.mkdir(parents=True)
    img.write_bytes((unbc_dir / "Images" / "042-ll042" / "ll042t1aaaff" / "ll042t1aaaff001.png").read_bytes())
    (tmp_path / "Images" / "s" / "q" / "q002.png").write_bytes(img.read_bytes())
    with pytest.raises(ValueError, match="q001_facs.txt"):
        unbc.load(tmp_path)
    bad.write_text("3.0000000e+00\n")
    data = unbc.load(tmp_path)
    assert len(data.frames) == 1 and [p.name for p in data.unlabelled] == ["q002.png"]


def test_evaluation_follows_the_grimace(readings):
    assert all(r.measures is not None for r in readings)
    result = evaluate_face.evaluate(readings)
    for subject in ("042-ll042", "064-ak064"):
        row = result[subject]
        assert row["frames"] == row["with_face"] == len(INTENSITIES)
        assert row["r"] > 0.8 and row["auroc"] > 0.9, row
    # the figures are those of the frames: recompute MAE for one subject by hand
    preds = evaluate_face.predict(readings)
    own = [(r.frame.pspi, p["pspi"]) for r, p in zip(readings, preds) if r.frame.subject == "042-ll042"]
    assert result["042-ll042"]["mae"] == pytest.approx(np.mean([abs(a - b) for a, b in own]))


def test_cli_prints_per_subject_and_json(unbc_dir, face_model_dir, capsys):
    assert evaluate_face.main(["--data", str(unbc_dir), "--model-dir", str(face_model_dir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("042-ll042") for line in out) and any(line.startswith("064-ak064") for line in out)
    last = json.loads(out[-1])
    assert set(last["results"]) >= {"042-ll042", "064-ak064", "all", "mean"}
    assert evaluate_face.main(["--data", str(unbc_dir / "nothing")]) == 2


def test_refit_lowers_each_au_error_and_writes_constants(readings, unbc_dir, face_model_dir, tmp_path, capsys):
    scales = refit_face.fit(readings)
    assert set(scales) == set(au.default_scales())
    table = refit_face.frame_table(readings)
    # the arrays give the same AUs as frame by frame
    one = next(r for r in readings if r.frame.pspi > 0)
    k = [r for r in readings if r.measures is not None].index(one)
    assert refit_face.au_error(table, scales, "au4") == pytest.approx(np.mean(
        [abs(au.action_units(r.measures, r.neutral, scales)["au4"] - r.frame.aus.get("au4", 0.0))
         for r in readings if r.measures is not None]))
    assert table.measures["brow_eye"][k] == one.measures["brow_eye"]
    lowered = 0
    for key, au_name in au.SCALE_AU.items():
        before = refit_face.au_error(table, au.default_scales(), au_name)
        after = refit_face.au_error(table, scales, au_name)
        assert after <= before + 1e-9, key
        lowered += after < before - 1e-6
    assert lowered >= 1
    loso = refit_face.out_of_subject(readings)
    assert set(loso) == {"042-ll042", "064-ak064"}
    assert all(np.isfinite(row["refit"]["mae"]) for row in loso.values())
    out = tmp_path / "scales.json"
    assert refit_face.main(["--data", str(unbc_dir), "--out", str(out), "--model-dir", str(face_model_dir)]) == 0
    assert "out of subject" in capsys.readouterr().out
    loaded = evaluate_face.load_scales(out)
    assert set(loaded) == set(au.default_scales())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scales": {"brow_eye": [0.1, 0.05]}}))
    with pytest.raises(ValueError, match="brow_eye"):
        evaluate_face.load_scales(bad)
