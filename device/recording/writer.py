"""The recorder: raw channels at their native rates into EDF+ files, events into an fsynced
JSON-lines sidecar next to each file. Never video: frames never reach it.

A session is cut into segments of ``rotate_min`` minutes, each one EDF+ file
(``<stem>.edf``) and one sidecar (``<stem>.events.jsonl``). EDF+ keeps the number of data
records and the annotations in places written when the file is closed (edflib writes the
annotation signal at close), so a power cut can spoil the open segment; closed segments are
complete, and the sidecar holds every event up to the cut because each event line is flushed
and fsynced (at most once per second for the periodic topics, at once for alarms,
self-reports, calibrations and the recording's own events).

Timing: samples sit on the monotonic clock. Each channel is a stream of sample indices from
the session start (``t0_ns``); a block is placed where its ``t0_ns`` says. A block later than
expected (a sensor that was missing) leaves a gap, filled with the last value and logged as a
``gap`` event; a small overlap or jitter (two samples or 50 ms) is absorbed. A data record
(``record_s``) is written once every channel covers it, or once the other channels are
``max_lag_s`` ahead (a stalled sensor must not hold the file back).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from sensors.max3010x import FULL_SCALE_COUNTS

from device.config.paths import private_dir, private_file
from device.processing.command_input import PayloadRefused, read_command
from device.processing.commands import CARERS, CommandRefused, CommandRequest, CommandRouter
from device.processing.timesync import WallClock

if TYPE_CHECKING:
    from device.config import PainmonConfig
    from device.processing.pipeline import Pipeline

log = logging.getLogger(__name__)

EVENT_TOPICS_FSYNC_AT_ONCE = frozenset({"alarm", "self_report", "calibration", "recording",
                                        "command", "stay", "scale", "analgesia"})
#: Commands recorded under a topic of their own (the rest as "command"; the scale scores are
#: recorded as the device publishes them, on "scale").
COMMAND_TOPICS = {"self_report": "self_report", "calibrate": "calibration", "admit": "stay",
                  "discharge": "stay", "analgesia": "analgesia"}
#: Physical range stored per unit (EDF+ keeps 16-bit samples scaled to this range).
UNIT_RANGES = {"counts": (0.0, float(FULL_SCALE_COUNTS)), "g": (-16.0, 16.0), "mV": (-10.0, 10.0),
               "uS": (0.0, 100.0), "V": (-6.144, 6.144)}
FALLBACK_RANGE = (-32768.0, 32767.0)
#: Topics also written as EDF+ annotations (every topic is in the sidecar). edflib places
#: annotations in the data records in order, ANNOTATION_SIGNALS per record, and drops what
#: does not fit: vitals and pain each hop, plus bursts of alarms and commands, fit in 6.
EDF_ANNOTATED_TOPICS = frozenset({"vitals", "pain", "alarm", "self_report", "calibration",
                                  "command", "stay", "scale", "analgesia"})
ANNOTATION_SIGNALS = 6
EDF_ANNOTATION_MAX = 40  # edflib's limit on an annotation's text
T0_PREFIX = "painmon t0_ns="


class RecordRequest(CommandRequest):
    action: Literal["start", "stop"]


def summary(topic: str, message: dict) -> str:
    """The short text of an event as an EDF+ annotation (the full message is in the sidecar)."""
    def f(value, spec):
        return "-" if value is None else format(value, spec)

    if topic == "vitals":
        hr = message.get("hr_bpm") or {}
        text = f"vitals hr {f(hr.get('ppg'), '.0f')}/{f(hr.get('ecg'), '.0f')} eda {f(message.get('eda_us'), '.2f')}"
    elif topic == "alarm":
        text = f"alarm {message.get('event')} {message.get('kind')} {message.get('source')}"
    elif topic in ("self_report", "calibration", "command", "stay", "analgesia"):
        req = message.get("request") or {}
        detail = req.get("nrs", req.get("action", req.get("duration_s", req.get(
            "reference", req.get("route", "")))))
        text = f"{message.get('command')} {detail} {'ok' if message.get('ok') else 'refused'}"
    elif "score" in message:
        text = f"{topic} {f(message.get('score'), '.1f')} {message.get('level') or ''}".strip()
    else:
        text = f"{topic} {message.get('event') or message.get('action') or ''}".strip()
    return text[:EDF_ANNOTATION_MAX]


class ChannelStream:
    """Samples of one channel not yet written, placed by sample index from the session start."""

    def __init__(self, name: str, rate_hz: float, unit: str, start_idx: int) -> None:
        self.name, self.rate_hz, self.unit = name, float(rate_hz), unit
        self.start_idx = start_idx
        self.pending = np.empty(0)
        self.last = 0.0  # the latest real sample: what fills a gap
        self.tolerance = max(2, round(0.05 * rate_hz))

    @property
    def end_idx(self) -> int:
        return self.start_idx + len(self.pending)

    def add(self, idx: int, samples: np.ndarray) -> int:
        """Place ``samples`` at ``idx``; returns the gap in samples that had to be filled."""
        if len(samples) == 0:
            return 0
        gap = idx - self.end_idx
        if gap > self.tolerance:
            fill = np.full(gap, self.last if self.end_idx > 0 else samples[0])
            self.pending = np.concatenate([self.pending, fill, samples])
        else:
            if gap < -self.tolerance:  # overlaps what is already placed: keep the newer part
                samples = samples[-gap:]
            gap = 0
            self.pending = np.concatenate([self.pending, samples])
        if len(samples):
            self.last = float(samples[-1])
        return gap

    def take(self, idx0: int, n: int) -> tuple[np.ndarray, int]:
        """Samples ``idx0 .. idx0 + n`` (edge-filled where missing) and how many were filled;
        everything before ``idx0 + n`` is dropped."""
        lo = idx0 - self.start_idx
        a, b = max(lo, 0), min(max(lo + n, 0), len(self.pending))
        have = self.pending[a:b] if b > a else np.empty(0)
        fill_front = min(n, max(0, -lo))
        fill_back = n - fill_front - len(have)
        front = have[0] if len(have) else (self.pending[0] if len(self.pending) else self.last)
        back = have[-1] if len(have) else self.last
        out = np.concatenate([np.full(fill_front, front), have, np.full(fill_back, back)])
        if lo + n > 0:
            self.pending = self.pending[min(lo + n, len(self.pending)):]
            self.start_idx = idx0 + n
        return out, fill_front + fill_back


class Segment:
    """One EDF+ file and its sidecar, covering data records ``r0`` onwards."""

    def __init__(self, directory: Path, stem: str, t0_ns: int, wall_start: datetime,
                 t_synced: bool, header: dict) -> None:
        self.stem = stem
        self.t0_ns = t0_ns
        self.edf_path = directory / f"{stem}.edf"
        self.events_path = directory / f"{stem}.events.jsonl"
        self.wall_start = wall_start
        self.t_synced = t_synced
        self.header = header
        self.writer = None
        self.channels: list[ChannelStream] = []
        self.records = 0
        self.r0 = 0
        self.clipped = 0
        # Recordings are health data: owner only, whatever the umask.
        fd = os.open(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._events = os.fdopen(fd, "a", encoding="utf-8")
        private_file(self.events_path)
        self._last_fsync_ns = 0

    def event(self, t_ns: int, topic: str, message: dict, *, fsync: bool) -> None:
        line = {"t_ns": int(t_ns), "onset_s": round((t_ns - self.t0_ns) / 1e9, 4),
                "topic": topic, "message": message}
        self._events.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")
        self._events.flush()
        if fsync or t_ns - self._last_fsync_ns >= 1_000_000_000:
            os.fsync(self._events.fileno())
            self._last_fsync_ns = t_ns
        if self.writer is not None and topic in EDF_ANNOTATED_TOPICS:
            self.writer.writeAnnotation(max(0.0, (t_ns - self.t0_ns) / 1e9), -1, summary(topic, message))

    def open_edf(self, channels: list[ChannelStream], r0: int, record_s: float) -> None:
        import pyedflib

        self.channels, self.r0 = list(channels), r0
        writer = pyedflib.EdfWriter(str(self.edf_path), len(channels), pyedflib.FILETYPE_EDFPLUS)
        private_file(self.edf_path)
        headers = []
        for ch in channels:
            lo, hi = UNIT_RANGES.get(ch.unit, FALLBACK_RANGE)
            headers.append({"label": ch.name[:16], "dimension": ch.unit[:8],
                            "sample_frequency": ch.rate_hz, "physical_min": lo,
                            "physical_max": hi, "digital_min": -32768, "digital_max": 32767,
                            "transducer": "", "prefilter": ""})
        writer.setSignalHeaders(headers)
        writer.set_number_of_annotation_signals(ANNOTATION_SIGNALS)
        with warnings.catch_warnings():
            # Every channel rate is checked to fit record_s (Recorder._place); pyedflib only
            # warns that forcing a duration could alter rates that do not.
            warnings.simplefilter("ignore", UserWarning)
            writer.setDatarecordDuration(record_s)
        writer.setStartdatetime(self.wall_start.replace(tzinfo=None))
        # EDF+ header subfields are space-separated: no spaces inside one.
        writer.setEquipment(f"painmon_{self.header.get('device_id', '')}"[:40])
        writer.setRecordingAdditional(f"boot_{self.header.get('boot_id', '')}"[:30])
        writer.writeAnnotation(0, -1, f"{T0_PREFIX}{self.t0_ns}")
        writer.writeAnnotation(0, -1, f"painmon t_synced={int(self.t_synced)}")
        self.writer = writer

    def write_record(self, columns: list[np.ndarray]) -> None:
        clipped = []
        for ch, col in zip(self.channels, columns):
            lo, hi = UNIT_RANGES.get(ch.unit, FALLBACK_RANGE)
            self.clipped += int(np.count_nonzero((col < lo) | (col > hi)))
            clipped.append(np.ascontiguousarray(np.clip(col, lo, hi), dtype=np.float64))
        self.writer.writeSamples(clipped)
        self.records += 1

    def close(self, t_ns: int) -> None:
        self.event(t_ns, "recording", {"event": "segment_end", "records": self.records,
                                       "clipped_samples": self.clipped}, fsync=True)
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self._events.close()


class Recorder:
    """Records what the pipeline reads and says: ``attach(pipeline)`` then ``start()``."""

    def __init__(self, directory: str | os.PathLike, clock, *, rotate_min: float = 10.0,
                 device_id: str = "painmon", boot_id: str = "", record_s: float = 1.0,
                 max_lag_s: float = 3.0, wall: WallClock | None = None) -> None:
        if rotate_min <= 0:
            raise ValueError(f"recording rotate_min must be > 0, got {rotate_min}")
        self.directory = Path(directory)
        self.clock = clock
        self.rotate_s = rotate_min * 60.0
        self.device_id, self.boot_id = device_id, boot_id
        self.record_s = record_s
        self.max_lag_s = max_lag_s
        self.wall = wall or WallClock()
        self.segments_closed: list[Path] = []
        self.gaps = 0
        self.skipped: set[str] = set()
        self.filled_samples = 0  # edge-filled: gaps, and a sensor lagging past max_lag_s
        self._lock = threading.Lock()
        self._segment: Segment | None = None
        self._streams: dict[str, ChannelStream] = {}
        self._t0_ns = 0
        self._next_record = 0
        self._rotate_pending = False
        self._counter = 0

    # -- control -----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._segment is not None

    def attach(self, pipeline: Pipeline, commands: CommandRouter) -> Recorder:
        """Record what ``pipeline`` publishes and drains, and what ``commands`` answers (self-
        reports and calibrations arrive as commands, answered on the result topic); serve the
        ``record`` command."""
        pipeline.add_output(self.on_message)
        pipeline.add_block_tap(self.on_blocks)
        commands.register("record", RecordRequest, self.command,
                          "Start or stop recording raw signals (EDF+) and events.",
                          roles=CARERS)
        commands.result_listeners.append(self.on_command)
        return self

    def on_command(self, name: str, payload: bytes, result: dict) -> None:
        """A handled command in full; a refused one as a short summary (its size and the
        reason), never its payload: a flood of large refused commands must not fill the disk."""
        if result.get("ok"):
            try:
                request = read_command(payload)
            except PayloadRefused as exc:  # accepted yet unreadable here: say so, briefly
                request = {"unreadable": str(exc)[:200]}
        else:
            request = {"bytes": len(payload) if isinstance(payload, (bytes, bytearray)) else None,
                       "request_id": result.get("request_id")}
        topic = COMMAND_TOPICS.get(name, "command") if result.get("ok") else "command"
        self.on_message(topic, {"command": str(name)[:64], "request": request,
                                "ok": result.get("ok"), "result": result.get("result"),
                                "reason": result.get("reason")})

    def command(self, request: RecordRequest) -> dict:
        if request.action == "start":
            if self.active:
                raise CommandRefused(f"already recording into {self._segment.edf_path}")
            try:
                return {"recording": True, "file": str(self.start())}
            except (RuntimeError, OSError) as exc:
                raise CommandRefused(str(exc)) from None
        if not self.active:
            raise CommandRefused("not recording")
        self.stop()
        return {"recording": False, "files": [str(p) for p in self.segments_closed]}

    def start(self) -> Path:
        """Begin a session now; returns the first EDF file's path."""
        try:
            import pyedflib  # noqa: F401 - fail here, clearly, not on the first hop
        except ImportError:
            raise RuntimeError("recording needs pyedflib: pip install 'painmon[record]'") from None
        with self._lock:
            if self._segment is None:
                private_dir(self.directory)
                self._t0_ns = self.clock.now_ns()
                self._streams.clear()
                self._next_record = 0
                self._new_segment(self._t0_ns)
                log.info("recording into %s", self.directory)
            return self._segment.edf_path

    def stop(self) -> None:
        with self._lock:
            if self._segment is None:
                return
            self._flush_records(final=True)
            self._close_segment()

    def move_to(self, directory: str | os.PathLike) -> None:
        """Record into ``directory`` from now on (a new session there when recording): each
        stay's recordings live, and are deleted, with the stay."""
        directory = Path(directory)
        if directory == self.directory:
            return
        recording = self.active
        self.stop()
        self.directory = directory
        if recording:
            self.start()

    # -- inputs ------------------------------------------------------------------------------
    def on_message(self, topic: str, message: dict) -> None:
        with self._lock:
            if self._segment is not None:
                self._segment.event(self.clock.now_ns(), topic, message,
                                    fsync=topic in EVENT_TOPICS_FSYNC_AT_ONCE)

    def on_blocks(self, blocks: list) -> None:
        with self._lock:
            if self._segment is None:
                return
            for block in blocks:
                self._place(block)
            self._flush_records(final=False)

    # -- internals ---------------------------------------------------------------------------
    def _place(self, block) -> None:
        idx = round((block.t0_ns - self._t0_ns) * block.rate_hz / 1e9)
        samples = np.asarray(block.samples, dtype=np.float64)
        if idx < 0:  # queued before the session started
            samples, idx = samples[-idx:], 0
            if len(samples) == 0:
                return
        if block.channel in self.skipped:
            return
        stream = self._streams.get(block.channel)
        if stream is None:
            spr = block.rate_hz * self.record_s
            if abs(spr - round(spr)) > 1e-6:
                self.skipped.add(block.channel)
                log.error("recording: channel %s at %g Hz does not fit a %g s EDF data record; "
                          "not recorded", block.channel, block.rate_hz, self.record_s)
                return
            stream = self._streams[block.channel] = ChannelStream(
                block.channel, block.rate_hz, block.unit, idx)
            if self._segment.writer is not None:
                self._rotate_pending = True  # a new channel needs a new file
        gap = stream.add(idx, samples)
        if gap:
            self.gaps += 1
            self._segment.event(self.clock.now_ns(), "recording", {
                "event": "gap", "channel": block.channel, "samples": gap,
                "from_ns": self._t0_ns + round((idx - gap) * 1e9 / block.rate_hz)}, fsync=False)

    def _spr(self, stream: ChannelStream) -> int:
        return round(stream.rate_hz * self.record_s)

    def _flush_records(self, *, final: bool) -> None:
        if not self._streams:
            return
        seg = self._segment
        if seg.writer is None:
            seg.open_edf(sorted(self._streams.values(), key=lambda s: s.name), self._next_record,
                         self.record_s)
        while True:
            r = self._next_record
            ends_s = [s.end_idx / s.rate_hz for s in seg.channels]
            record_end_s = (r + 1) * self.record_s
            complete = all(e >= record_end_s for e in ends_s)
            overdue = max(ends_s) >= record_end_s + self.max_lag_s
            if not (complete or overdue or (final and max(ends_s) > r * self.record_s)):
                break
            columns = []
            for stream in seg.channels:
                spr = self._spr(stream)
                col, n_filled = stream.take(r * spr, spr)
                self.filled_samples += n_filled
                columns.append(col)
            seg.write_record(columns)
            self._next_record += 1
            if not final and (self._rotate_pending
                              or (self._next_record - seg.r0) * self.record_s >= self.rotate_s):
                boundary_ns = self._t0_ns + round(self._next_record * self.record_s * 1e9)
                self._close_segment()
                self._new_segment(boundary_ns)
                seg = self._segment
                seg.open_edf(sorted(self._streams.values(), key=lambda s: s.name),
                             self._next_record, self.record_s)
                self._rotate_pending = False

    def _new_segment(self, t0_ns: int) -> None:
        self._counter += 1
        synced = self.wall.synced()
        # The wall time of t0_ns: now, minus the clock time since (the clock may be scaled).
        elapsed_s = (self.clock.now_ns() - t0_ns) / 1e9 / getattr(self.clock, "speed", 1.0)
        wall_start = datetime.now(UTC) - timedelta(seconds=max(0.0, elapsed_s))
        stem = f"painmon-{self.device_id}-{wall_start:%Y%m%dT%H%M%S}-{self._counter:03d}"
        header = {"device_id": self.device_id, "boot_id": self.boot_id}
        self._segment = Segment(self.directory, stem, t0_ns, wall_start, synced, header)
        self._segment.event(t0_ns, "recording", {
            "event": "segment_start", "edf": self._segment.edf_path.name, "t0_ns": t0_ns,
            "session_t0_ns": self._t0_ns, "wall_start": wall_start.isoformat(),
            "t_synced": synced, "record_s": self.record_s, **header}, fsync=True)

    def _close_segment(self) -> None:
        seg, self._segment = self._segment, None
        seg.close(self.clock.now_ns())
        self.segments_closed.append(seg.edf_path)
        log.info("recording segment closed: %s (%d records)", seg.edf_path.name, seg.records)


def attach_recorder(config: PainmonConfig, pipeline: Pipeline, commands: CommandRouter, *,
                    boot_id: str, wall: WallClock,
                    directory: str | os.PathLike | None = None) -> Recorder:
    """The recorder on ``pipeline``: the ``record`` command is always there; recording starts
    now when ``directory`` is given or ``[recording] enabled`` is set."""
    rec = config.recording
    target = Path(directory) if directory else (rec.dir or config.state_dir / "recordings")
    recorder = Recorder(target, pipeline.clock, rotate_min=rec.rotate_min,
                        device_id=config.device_id, boot_id=boot_id, wall=wall)
    recorder.attach(pipeline, commands)
    if directory or rec.enabled:
        recorder.start()
    return recorder
