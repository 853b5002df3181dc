"""Camera frame sources: a still photo in gentle motion, image folders, video files, live cameras.

Every source stamps frames on a Clock and never queues: a consumer that falls behind gets the
newest frame and the ones it missed are counted in ``frames_dropped``. Live cameras are asked
for the freshest frame too (V4L2 buffer of one, picamera2's latest request). OpenCV and
picamera2 are optional: importing this module needs only numpy, and a source whose library is
missing raises ``CameraUnavailable`` saying what to install.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sensors.clock import Clock, MonotonicClock
from sensors.types import Frame

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")


class CameraUnavailable(RuntimeError):
    """The camera or the library it needs is not there."""


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # optional dependency
        raise CameraUnavailable(f"this frame source needs OpenCV: pip install opencv-python-headless ({exc})") from exc
    return cv2


class FrameSource:
    """Base: ``read() -> Frame | None`` (None once closed or exhausted); a context manager.

    Paced sources (photo, folder, file) produce frame ``k`` at ``t0 + k / rate_hz`` on the
    clock; ``read`` waits for the next one, or, when the caller is late, skips to the newest
    and counts the skipped frames as dropped.
    """

    name = "frames"

    def __init__(self, rate_hz: float = 15.0, clock: Clock | None = None) -> None:
        if rate_hz <= 0:
            raise ValueError(f"{self.name}: rate_hz must be > 0, got {rate_hz}")
        self.rate_hz = float(rate_hz)
        self.clock = clock if clock is not None else MonotonicClock()
        self.frames_read = 0
        self.frames_dropped = 0
        self.closed = False
        self._t0_ns: int | None = None
        self._next = 0

    def read(self) -> Frame | None:
        if self.closed:
            return None
        period_ns = 1e9 / self.rate_hz
        now = self.clock.now_ns()
        if self._t0_ns is None:
            self._t0_ns = now
        due = self._t0_ns + round(self._next * period_ns)
        if now < due:
            self.clock.sleep((due - now) / 1e9)
            now = max(self.clock.now_ns(), due)
        index = max(self._next, int((now - self._t0_ns) // period_ns))
        image = self._image(index)
        if image is None:
            self.close()
            return None
        self.frames_dropped += index - self._next
        self.frames_read += 1
        self._next = index + 1
        return Frame(self._t0_ns + round(index * period_ns), image, self.name, {"index": index})

    def _image(self, index: int) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    cv2 = _cv2()
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ImageFolderSource(FrameSource):
    """The images of a folder in name order (.npy arrays need nothing; others need OpenCV)."""

    name = "folder"

    def __init__(self, folder: str | Path, rate_hz: float = 15.0, clock: Clock | None = None,
                 loop: bool = False) -> None:
        super().__init__(rate_hz, clock)
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CameraUnavailable(f"image folder not found: {self.folder}")
        self.paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise CameraUnavailable(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}")
        self.loop = loop

    def _image(self, index: int) -> np.ndarray | None:
        if index >= len(self.paths) and not self.loop:
            return None
        return _read_image(self.paths[index % len(self.paths)])


class VideoFileSource(FrameSource):
    """A video file through OpenCV, paced at its own frame rate (or ``rate_hz``)."""

    name = "video"

    def __init__(self, path: str | Path, rate_hz: float | None = None, clock: Clock | None = None) -> None:
        cv2 = _cv2()
        self.path = Path(path)
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise CameraUnavailable(f"cannot open video file {self.path}")
        file_rate = self._cap.get(cv2.CAP_PROP_FPS) or 0.0
        super().__init__(rate_hz or (file_rate if file_rate > 0 else 15.0), clock)
        self._position = 0
        self._cvt = cv2.cvtColor
        self._bgr2rgb = cv2.COLOR_BGR2RGB

    def _image(self, index: int) -> np.ndarray | None:
        while self._position < index:  # late consumer: skip frames without decoding them
            if not self._cap.grab():
                return None
            self._position += 1
        ok, image = self._cap.read()
        if not ok:
            return None
        self._position += 1
        return self._cvt(image, self._bgr2rgb)

    def close(self) -> None:
        if not self.closed:
            self._cap.release()
        super().close()


class _LiveSource(FrameSource):
    """Live cameras: the frame is stamped when it arrives; the driver keeps only the newest."""

    def read(self) -> Frame | None:
        if self.closed:
            return None
        image = self._capture()
        if image is None:
            return None
        self.frames_read += 1
        return Frame(self.clock.now_ns(), image, self.name, {})

    def _capture(self) -> np.ndarray | None:
        raise NotImplementedError


class OpenCVCaptureSource(_LiveSource):
    """A V4L2 device index (e.g. 0 for /dev/video0) or a GStreamer pipeline string."""

    name = "opencv"

    def __init__(self, device: int | str, size: tuple[int, int] = (640, 480), rate_hz: float = 15.0,
                 clock: Clock | None = None) -> None:
        super().__init__(rate_hz, clock)
        cv2 = _cv2()
        if isinstance(device, str) and "!" in device:
            self._cap = cv2.VideoCapture(device, cv2.CAP_GSTREAMER)
        else:
            self._cap = cv2.VideoCapture(int(device), cv2.CAP_V4L2)
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
            self._cap.set(cv2.CAP_PROP_FPS, rate_hz)
            self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # hand out the newest frame, not a backlog
        if not self._cap.isOpened():
            raise CameraUnavailable(f"cannot open camera {device!r}")
        self._cvt, self._bgr2rgb = cv2.cvtColor, cv2.COLOR_BGR2RGB

    def _capture(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        return self._cvt(image, self._bgr2rgb) if ok else None

    def close(self) -> None:
        if not self.closed:
            self._cap.release()
        super().close()


class Picamera2Source(_LiveSource):
    """The Raspberry Pi camera through picamera2 (libcamera), RGB888 at ``size``."""

    name = "picamera2"

    def __init__(self, size: tuple[int, int] = (640, 480), rate_hz: float = 15.0, clock: Clock | None = None) -> None:
        super().__init__(rate_hz, clock)
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraUnavailable(f"picamera2 is not installed (apt install python3-picamera2): {exc}") from exc
        self._cam = Picamera2()
        # libcamera's "RGB888" is B,G,R in memory; "BGR888" gives R,G,B order.
        config = self._cam.create_video_configuration(
            main={"size": tuple(size), "format": "BGR888"}, controls={"FrameRate": rate_hz}, buffer_count=2
        )
        self._cam.configure(config)
        self._cam.start()

    def _capture(self) -> np.ndarray | None:
        return self._cam.capture_array("main")

    def close(self) -> None:
        if not self.closed:
            self._cam.stop()
            self._cam.close()
        super().close()


def open_camera(spec: str | int, clock: Clock | None = None, rate_hz: float = 15.0) -> FrameSource:
    """A real frame source: an int -> V4L2 index; "picamera2"; a pipeline with "!" ->
    GStreamer; a folder -> its images; a file -> a video. (The demo's photo is
    ``sensors.emulated.photo``.)"""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return OpenCVCaptureSource(int(spec), rate_hz=rate_hz, clock=clock)
    if spec == "picamera2":
        return Picamera2Source(rate_hz=rate_hz, clock=clock)
    if "!" in spec:
        return OpenCVCaptureSource(spec, rate_hz=rate_hz, clock=clock)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, rate_hz=rate_hz, clock=clock)
    if path.is_file():
        return VideoFileSource(path, clock=clock)
    raise CameraUnavailable(f"--camera {spec!r}: not a device index, picamera2, a GStreamer pipeline, "
                            "a folder or a file")
