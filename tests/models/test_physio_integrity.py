"""The committed physio model is checked like the face models: a changed byte stops the load,
naming the file and its sha256."""

from __future__ import annotations

import shutil

import pytest

from models.physio import PhysioEstimator
from models.physio.estimator import DEFAULT_MODEL
from models.physio.integrity import SUMS_FILE, ModelIntegrityError, pinned, sha256_of, verify_model


def test_the_committed_models_are_pinned_and_match():
    sums = pinned(DEFAULT_MODEL.parent)
    assert sums is not None and DEFAULT_MODEL.name in sums
    for name, digest in sums.items():
        assert sha256_of(DEFAULT_MODEL.parent / name) == digest, name


@pytest.mark.parametrize("offset", [0, 100, 1000, -200, -1])
def test_a_flipped_byte_stops_the_load(tmp_path, offset):
    copy = tmp_path / DEFAULT_MODEL.name
    shutil.copy(DEFAULT_MODEL, copy)
    shutil.copy(DEFAULT_MODEL.parent / SUMS_FILE, tmp_path / SUMS_FILE)
    PhysioEstimator(model_path=copy)  # the untouched copy loads
    data = bytearray(copy.read_bytes())
    data[offset] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as err:
        PhysioEstimator(model_path=copy)
    assert str(copy) in str(err.value) and sha256_of(copy) in str(err.value)


def test_an_unlisted_file_among_the_committed_ones_is_refused(tmp_path):
    stray = DEFAULT_MODEL.parent / "stray_test_model.tflite"
    stray.write_bytes(DEFAULT_MODEL.read_bytes())
    try:
        with pytest.raises(ModelIntegrityError, match="not listed"):
            verify_model(stray)
    finally:
        stray.unlink()
    elsewhere = tmp_path / "trained.tflite"  # a training run's output, no sums beside it
    elsewhere.write_bytes(DEFAULT_MODEL.read_bytes())
    assert verify_model(elsewhere) == elsewhere.resolve()
