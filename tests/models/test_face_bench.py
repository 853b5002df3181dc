import json

from tools.bench import face


def test_bench_smoke(face_model_dir, capsys):
    assert face.main(["--frames", "3", "--warmup", "1", "--no-peer", "--model-dir", str(face_model_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["bench"] == "face"
    pm = result["results"]["painmon"]
    assert pm["ms_median_tracking"] > 0 and pm["ms_median_no_tracking"] > 0
    assert pm["faces_found_tracking"] == 1.0
    assert "error" in result["results"]["mediapipe_face_mesh"]
    assert result["machine"]["threads"] == 1
