import numpy as np
import pytest

from sensors.camera import (
    CameraUnavailable,
    ImageFolderSource,
    OpenCVCaptureSource,
    Picamera2Source,
    VideoFileSource,
    open_camera,
)
from sensors.clock import SteppedClock
from sensors.emulated.photo import PhotoSource, similarity_warp


def test_photo_source_paces_frames_on_the_clock():
    clock = SteppedClock()
    with PhotoSource(rate_hz=10.0, clock=clock) as source:
        frames = [source.read() for _ in range(4)]
    assert [f.t_ns for f in frames] == [0, 100_000_000, 200_000_000, 300_000_000]
    assert clock.now_ns() == 300_000_000  # read() waited for each frame
    assert frames[0].image.shape == (480, 640, 3) and frames[0].image.dtype == np.uint8
    assert source.frames_read == 4 and source.frames_dropped == 0
    assert source.read() is None  # closed by the context manager


def test_photo_moves_over_time():
    clock = SteppedClock()
    source = PhotoSource(clock=clock)
    first = source.read().image.astype(int)
    clock.advance(3.0)
    later = source.read().image.astype(int)
    assert np.abs(first - later).mean() > 5


def test_slow_consumer_drops_instead_of_queueing():
    clock = SteppedClock()
    source = PhotoSource(rate_hz=10.0, clock=clock)
    source.read()
    clock.advance(0.55)  # 5.5 frame periods of work
    frame = source.read()
    assert frame.meta["index"] == 5 and frame.t_ns == 500_000_000
    assert source.frames_dropped == 4
    assert source.read().meta["index"] == 6


def test_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate_hz"):
        PhotoSource(rate_hz=0)


def test_similarity_warp_identity_and_shift():
    photo = np.arange(48, dtype=np.uint8).reshape(6, 8)
    same = similarity_warp(photo, (6, 8), 1.0, 0.0, (0.0, 0.0))
    assert np.array_equal(same[:5, :7], photo[:5, :7])
    shifted = similarity_warp(photo, (6, 8), 1.0, 0.0, (1.0, 0.0))
    assert np.array_equal(shifted[1:5, 1:7], photo[1:5, 0:6])


def test_image_folder_of_npy_needs_no_opencv(tmp_path):
    for i in range(3):
        np.save(tmp_path / f"f{i}.npy", np.full((4, 5, 3), i, np.uint8))
    source = ImageFolderSource(tmp_path, rate_hz=5.0, clock=SteppedClock())
    values = [f.image[0, 0, 0] for f in source]
    assert values == [0, 1, 2]
    assert source.read() is None


def test_image_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(CameraUnavailable, match="no images"):
        ImageFolderSource(tmp_path)
    with pytest.raises(CameraUnavailable, match="not found"):
        ImageFolderSource(tmp_path / "nope")


def test_png_folder_and_video_file_through_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless not installed")
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    frame = ImageFolderSource(tmp_path, clock=SteppedClock()).read()
    assert frame.image[0, 0].tolist() == [200, 0, 0]

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(8):
        writer.write(np.full((48, 64, 3), i * 30, np.uint8))
    writer.release()
    clock = SteppedClock()
    source = VideoFileSource(video, clock=clock)
    assert source.rate_hz == pytest.approx(10.0)
    first = source.read()
    clock.advance(0.35)
    late = source.read()
    assert late.meta["index"] == 3 and source.frames_dropped == 2
    assert abs(int(late.image.mean()) - 3 * 30) < 8 and abs(int(first.image.mean())) < 8
    rest = list(source)
    assert len(rest) == 4 and source.read() is None


def test_live_cameras_fail_clearly_when_absent():
    with pytest.raises(CameraUnavailable, match="picamera2"):
        Picamera2Source()
    pytest.importorskip("cv2")
    with pytest.raises(CameraUnavailable, match="cannot open camera 99"):
        OpenCVCaptureSource(99)


def test_open_camera_understands_the_camera_option(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 2, 3), np.uint8))
    assert isinstance(open_camera(str(tmp_path)), ImageFolderSource)
    with pytest.raises(CameraUnavailable, match="not a device index"):
        open_camera(str(tmp_path / "missing.mp4"))
