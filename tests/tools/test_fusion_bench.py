"""Smoke test of the fusion evaluation and the multimodal simulator, on one short person."""

from __future__ import annotations

import json

import numpy as np

from tools.bench.fusion import auroc, main
from tools.fusion_sim import Person, Session, face_estimates, pain_face


def test_auroc_against_known_orderings():
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auroc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert auroc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5


def test_one_latent_drives_the_face(face_model_dir):
    from tools.fusion_sim import demo_base_landmarks

    base = demo_base_landmarks()
    person = Person.draw(3)
    session = Session(200.0, ((90.0, 170.0, 8.0),), (), ((120.0, 130.0),))
    faces = face_estimates(person, session, base)
    assert faces[125] is None  # out of view during the dropout
    rest = [f.score for f in faces[60:85]]
    pain = [f.score for f in faces[100:170] if f is not None]
    assert np.mean(pain) > np.mean(rest) + 0.5 and max(pain) > 3 * max(rest)
    assert not np.allclose(pain_face(base, 1.0), base)


def test_bench_prints_the_table_then_one_json_line(face_model_dir, capsys):
    assert main(["--people", "1", "--duration", "300"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "all modalities" in "\n".join(lines)
    last = json.loads(lines[-1])
    assert last["bench"] == "fusion"
    painmon = last["results"]["painmon"]
    for key in ("auroc_all", "auroc_face_gone", "auroc_physio_gone", "auroc_motion"):
        assert 0.0 <= painmon[key] <= 1.0
    assert {"naive_mean", "physio_alone", "face_alone"} <= set(last["results"])
