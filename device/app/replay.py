"""Replay: a recording through the same live pipeline; only the source changes.

The replay board holds one "sensor" per group the device has (``ppg``, ``accel``, ``adc``);
each emits the recorded samples as ``SampleBlock``s once the clock has passed their end, in
chunks of ``chunk_s``, the way a FIFO read delivers them. Readers, the queue, the hop loop,
the models, the outputs and MQTT are the device's own, so a replay publishes what the device
would have published. The face is off: video is never recorded.

For painmon's own recordings the clock starts where the recording's first hop sat (from the
first recorded ``vitals`` event), so every hop sees the window it saw live.

A replay normally runs on a clock ``speed`` times faster than real time, with the device's
reader threads, and skips hops when processing falls behind, as the device does. With
``exact`` it runs every hop, in order, as fast as the machine goes, on a clock that moves
only from hop to hop (``Pipeline.run_every_hop``): the same recording then gives the same
messages every time, on any machine.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import TextIO

from sensors.clock import SteppedClock
from sensors.types import SampleBlock

from device.acquisition.board import Board
from device.acquisition.sensor import Sensor
from device.app.broker_choice import with_broker
from device.app.console import console_for, where
from device.app.device import connect, stop_on_signals
from device.app.root import build_monitor
from device.comms.link import MqttLink
from device.config import default_config, load_config
from device.processing.envelope import new_boot_id
from device.recording.readers import Recording, open_recording

log = logging.getLogger(__name__)

#: An exact replay waits for the broker every this many hops, so that at most
#: ``EXACT_BACKLOG`` messages are ever queued in paho (which holds 1000).
EXACT_PACE_HOPS = 20
EXACT_BACKLOG = 200
EXACT_DRAIN_S = 60.0

#: The device's sensor groups, by the channels they deliver.
SENSOR_OF_CHANNEL = (("ppg_", "ppg"), ("acc_", "accel"), ("eda", "adc"), ("ecg", "adc"))


class ReplayClock:
    """Virtual time at ``speed`` x real time, re-based to a recording's time by ``rebase``."""

    def __init__(self, speed: float = 1.0, start_ns: int = 0) -> None:
        if speed <= 0:
            raise ValueError(f"--speed must be > 0, got {speed}")
        self.speed = float(speed)
        self.rebase(start_ns)

    def rebase(self, start_ns: int) -> None:
        self._start_ns, self._real0 = int(start_ns), time.monotonic_ns()

    def now_ns(self) -> int:
        return self._start_ns + int((time.monotonic_ns() - self._real0) * self.speed)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)


def chunks(block: SampleBlock, chunk_s: float) -> list[SampleBlock]:
    n = max(1, round(block.rate_hz * chunk_s))
    return [SampleBlock(block.channel, block.rate_hz,
                        block.t0_ns + round(i * 1e9 / block.rate_hz), block.samples[i:i + n],
                        block.unit)
            for i in range(0, len(block.samples), n)]


class RecordedSensor:
    """An acquirer (see device.acquisition.sensor) that plays recorded blocks on the clock."""

    def __init__(self, blocks: list[SampleBlock], clock, chunk_s: float = 0.1) -> None:
        self.clock = clock
        self.pending = sorted((c for b in blocks for c in chunks(b, chunk_s)),
                              key=lambda c: c.t_end_ns)
        self._next = 0

    @property
    def finished(self) -> bool:
        return self._next >= len(self.pending)

    def open(self) -> None:
        pass

    def next_due_ns(self) -> int:
        if self.finished:
            return self.clock.now_ns() + 1_000_000_000
        return self.pending[self._next].t_end_ns

    def poll(self) -> list[SampleBlock]:
        now, out = self.clock.now_ns(), []
        while not self.finished and self.pending[self._next].t_end_ns <= now:
            out.append(self.pending[self._next])
            self._next += 1
        return out

    def close(self) -> None:
        pass


def sensor_name(channel: str) -> str:
    return next((name for prefix, name in SENSOR_OF_CHANNEL if channel.startswith(prefix)),
                channel)


def replay_board(recording: Recording, clock, chunk_s: float = 0.1) -> Board:
    groups: dict[str, list[SampleBlock]] = {}
    for channel, blocks in recording.blocks.items():
        groups.setdefault(sensor_name(channel), []).extend(blocks)
    sensors = [Sensor(name, RecordedSensor(blocks, clock, chunk_s), clock)
               for name, blocks in sorted(groups.items())]
    return Board({"replay": sensors})


def first_hop_ns(recording: Recording) -> int | None:
    vitals = recording.messages("vitals")
    return int(vitals[0]["t_ns"]) if vitals else None


def replay_config(config_path: str | None):
    config = load_config(config_path) if config_path else default_config()
    return config.model_copy(update={"face": config.face.model_copy(update={"enabled": False})})


def run_replay(path: str, *, speed: float = 1.0, broker: str | None = None,
               config_path: str | None = None, out: TextIO = sys.stdout,
               outputs: list[Callable[[str, dict], None]] | None = None,
               quiet: bool = False, exact: bool = False) -> int:
    """Replay ``path`` through the pipeline, publishing over MQTT like the device; with
    ``exact``, every hop as fast as possible and the same messages every run."""
    recording = open_recording(path)
    config = replay_config(config_path)
    hop_ns = round(config.processing.hop_s * 1e9)
    boot_id = new_boot_id()
    with ExitStack() as stack:
        config = with_broker(config, broker, stack, out)
        print(f"painmon replay: {recording.source} recording {recording.name} "
              f"({recording.duration_s:.0f} s, {', '.join(sorted(recording.blocks))}) -> "
              f"{where(config)}  "
              f"({'every hop, as fast as possible' if exact else f'speed x{speed:g}'})",
              file=out, flush=True)
        first = first_hop_ns(recording)
        # pipeline.start() puts the first hop one hop after now: make that the recorded one.
        start_ns = first - hop_ns if first is not None else recording.start_ns
        clock = SteppedClock(start_ns) if exact else ReplayClock(speed, recording.start_ns)
        link = stack.enter_context(MqttLink(config.mqtt, config.device_id, boot_id))
        # Each message says where on the recording's time line it was made, so a consumer
        # (and a comparison with the live run) can place it.
        monitor = build_monitor(
            config, clock, outputs, boot_id=boot_id, board=replay_board(recording, clock),
            envelope_extra=lambda: {"replay": {"recording": recording.name,
                                               "t_ns": clock.now_ns()}})
        pipeline = monitor.pipeline
        connect(monitor, link, stack, recorder=False,
                drain_s=EXACT_DRAIN_S if exact else 2.0)
        if not quiet:
            console = console_for(config, out)
            stack.callback(console.close)
        if not exact:
            clock.rebase(start_ns)
        seconds = (recording.end_ns - clock.now_ns()) / 1e9 + 0.5 * config.processing.hop_s
        stop_on_signals(pipeline)
        try:
            if exact:
                pipeline.hop_listeners.append(
                    lambda hops: hops % EXACT_PACE_HOPS or link.wait_backlog(EXACT_BACKLOG, 30.0))
                pipeline.run_every_hop(seconds)
            else:
                pipeline.run(seconds)
        finally:
            pipeline.stop()
        if not quiet:
            time.sleep(0.3)  # let the console print the last messages back
    return 0
