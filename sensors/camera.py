"""Camera frame sources: a still photo in gentle motion, image folders, video files, live cameras.

Every source stamps frames on a Clock and never queues: a consumer that falls behind gets the
newest frame and the ones it missed are counted in ``frames_dropped``. Live cameras are asked
for the freshest frame too (V4L2 buffer of one, picamera2's latest request). OpenCV and
picamera2 are optional: importing this module needs only numpy, and a source whose library is
missing raises ``CameraUnavailable`` saying what to install.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sensors.clock import Clock, MonotonicClock
from sensors.expression import ExpressionUnavailable, FacePoints, PainExpression
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

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame


def astronaut_photo() -> np.ndarray:
    """scikit-image's ``data.astronaut()``: Eileen Collins' NASA portrait (public domain)."""
    import importlib.util

    # Importing skimage costs ~8 MB of RSS on the device and ~0.1 s; its PNG decoded with
    # Pillow (a dependency of scikit-image) costs ~3 MB and ~25 ms, same pixels.
    spec = importlib.util.find_spec("skimage")
    png = Path(spec.origin).parent / "data" / "astronaut.png" if spec and spec.origin else None
    if png is not None and png.is_file():
        try:
            from PIL import Image
        except ImportError:
            pass
        else:
            with Image.open(png) as image:
                return np.array(image.convert("RGB"))
    try:
        from skimage import data
    except ImportError as exc:
        raise CameraUnavailable(f"the demo photo comes from scikit-image: pip install scikit-image ({exc})") from exc
    return data.astronaut()


#: Output rows warped per pass: the temporaries of one pass stay ~1 MB instead of ~57 MB for a
#: whole 640 x 480 frame (peak RSS on the device), and the gathers stay in cache.
WARP_BAND_ROWS = 32


def similarity_warp(photo: np.ndarray, out_hw: tuple[int, int], scale: float, angle_rad: float,
                    shift_xy: tuple[float, float], fill: int = 96) -> np.ndarray:
    """The photo scaled, rotated about its centre and shifted, on an ``out_hw`` canvas (bilinear)."""
    out_h, out_w = out_hw
    src = photo if photo.ndim == 3 else photo[:, :, None]
    h, w, channels = src.shape
    flat = src.reshape(h * w, channels)
    c, s = math.cos(angle_rad) / scale, math.sin(angle_rad) / scale
    dx = np.arange(out_w, dtype=np.float32)[None, :] + 0.5 - out_w / 2.0 - shift_xy[0]  # pixel centres
    out = np.empty((out_h, out_w, channels), np.uint8)
    for top_row in range(0, out_h, WARP_BAND_ROWS):
        rows = np.arange(top_row, min(top_row + WARP_BAND_ROWS, out_h), dtype=np.float32)[:, None]
        dy = rows + 0.5 - out_h / 2.0 - shift_xy[1]
        sx = c * dx + s * dy + w / 2.0 - 0.5
        sy = -s * dx + c * dy + h / 2.0 - 0.5
        x0, y0 = np.floor(sx).astype(np.intp), np.floor(sy).astype(np.intp)
        fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
        inside = ((x0 >= 0) & (y0 >= 0) & (x0 < w - 1) & (y0 < h - 1))[..., None]
        at = np.clip(y0, 0, h - 2) * w + np.clip(x0, 0, w - 2)  # top-left neighbour, flat
        p00, p01 = flat.take(at, axis=0).astype(np.float32), flat.take(at + 1, axis=0).astype(np.float32)
        p10 = flat.take(at + w, axis=0).astype(np.float32)
        p11 = flat.take(at + w + 1, axis=0).astype(np.float32)
        upper = p00 * (1 - fx) + p01 * fx
        lower = p10 * (1 - fx) + p11 * fx
        band = np.where(inside, upper * (1 - fy) + lower * fy, np.float32(fill))
        out[top_row:top_row + len(rows)] = np.clip(band + 0.5, 0, 255).astype(np.uint8)
    return out if photo.ndim == 3 else out[:, :, 0]


class PhotoSource(FrameSource):
    """A still photo that drifts, breathes in scale and tilts a little, like a person in bed.

    Motion is a slow Lissajous path: +-``shift_px`` at 0.13/0.07 Hz, scale +-``scale_var`` at
    0.05 Hz, rotation +-``tilt_deg`` at 0.09 Hz, all on the frame's time stamp.

    ``expression(t_s) -> 0..1``, called with each frame's clock time in seconds, makes the face
    grimace with that pain intensity (``sensors.expression``) before it moves. It needs the
    photo's feature points: known for the astronaut photo, else pass ``face_points``.
    """

    name = "photo"

    def __init__(self, photo: np.ndarray | None = None, size: tuple[int, int] = (640, 480),
                 rate_hz: float = 15.0, clock: Clock | None = None, shift_px: float = 20.0,
                 scale_var: float = 0.08, tilt_deg: float = 5.0,
                 expression: Callable[[float], float] | None = None,
                 face_points: FacePoints | None = None) -> None:
        super().__init__(rate_hz, clock)
        self.photo = astronaut_photo() if photo is None else np.asarray(photo)
        if self.photo.ndim not in (2, 3) or self.photo.dtype != np.uint8:
            raise ValueError(f"photo must be an H x W (x 3) uint8 image, got {self.photo.dtype} {self.photo.shape}")
        self.width, self.height = size
        self.shift_px, self.scale_var, self.tilt_deg = shift_px, scale_var, tilt_deg
        self._fit = min(self.width / self.photo.shape[1], self.height / self.photo.shape[0])
        self.expression = expression
        self._face: PainExpression | None = None
        self._faces: tuple[float, np.ndarray] = (0.0, self.photo)
        if expression is not None:
            if face_points is None and photo is not None:
                raise ExpressionUnavailable(
                    "PhotoSource: a pain expression needs the photo's feature points; they are "
                    "known for the astronaut photo only; pass face_points= for this photo")
            self._face = PainExpression(face_points or FacePoints.astronaut())
            if tuple(self.photo.shape[:2]) != tuple(self._face.points.shape):
                raise ExpressionUnavailable(
                    f"PhotoSource: face_points are for a {self._face.points.shape} photo, "
                    f"this photo is {self.photo.shape[:2]}")

    def _face_at(self, t_s: float) -> np.ndarray:
        intensity = float(self.expression(t_s))
        if not (math.isfinite(intensity) and 0.0 <= intensity <= 1.0):
            raise ValueError(f"PhotoSource: expression({t_s:.2f}) gave {intensity!r}, not 0..1")
        # Steps of 1/100 are below what the face path resolves; reuse the last warp within one.
        level = round(intensity, 2)
        if level != self._faces[0]:
            self._faces = (level, self._face.apply(self.photo, level))
        return self._faces[1]

    def _image(self, index: int) -> np.ndarray:
        t = index / self.rate_hz
        photo = self.photo
        if self._face is not None:
            photo = self._face_at((self._t0_ns + round(index * 1e9 / self.rate_hz)) / 1e9)
        scale = self._fit * (1.0 + self.scale_var * math.sin(2 * math.pi * 0.05 * t))
        angle = math.radians(self.tilt_deg) * math.sin(2 * math.pi * 0.09 * t)
        shift = (self.shift_px * math.sin(2 * math.pi * 0.13 * t), self.shift_px * math.sin(2 * math.pi * 0.07 * t))
        return similarity_warp(photo, (self.height, self.width), scale, angle, shift)


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

    def __init__(self, folder: str | Path, rate_hz: float = 15.0, clock: Clock | None = None, loop: bool = False) -> None:
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

    def __init__(self, device: int | str, size: tuple[int, int] = (640, 480), rate_hz: float = 15.0, clock: Clock | None = None) -> None:
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


def open_camera(spec: str | int | None, clock: Clock | None = None, rate_hz: float = 15.0,
                expression: Callable[[float], float] | None = None) -> FrameSource:
    """What ``--camera`` means: None -> the demo photo; an int -> V4L2 index; "picamera2";
    a pipeline with "!" -> GStreamer; a folder -> its images; a file -> a video.
    ``expression`` (the demo photo's pain intensity over time) applies to the photo only."""
    if spec is None or spec == "photo":
        return PhotoSource(rate_hz=rate_hz, clock=clock, expression=expression)
    if expression is not None:
        raise ExpressionUnavailable(f"--camera {spec!r}: an expression can only be drawn on the demo photo")
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
    raise CameraUnavailable(f"--camera {spec!r}: not a device index, picamera2, a GStreamer pipeline, a folder or a file")
