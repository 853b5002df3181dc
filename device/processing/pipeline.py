"""The pipeline: reader threads → bounded queue → one processing loop on the hop → outputs.

The loop owns time: every ``hop_s`` of the clock it drains the queue into the signal path,
computes the vitals over the latest window and hands one message per topic to the outputs
(MQTT, the console, a recorder). It also supervises the reader threads: a reader that crashed
is restarted within a budget, and the crash is reported, never silent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from models.modality import ModalityEstimate
from models.vitals import VitalsTracker
from models.vitals_record import Vitals
from sensors.clock import Clock

from device.acquisition.board import Board
from device.acquisition.queues import DropOldestQueue
from device.acquisition.readers import BusReader
from device.acquisition.sensor import describe_error
from device.config import PainmonConfig
from device.config.version import painmon_version
from device.processing.alarms import Alarm, AlarmBook
from device.processing.envelope import Envelope
from device.processing.face import FaceWorker
from device.processing.health import Health
from device.processing.physio import PhysioStage
from device.processing.wake import Wake

log = logging.getLogger(__name__)
# A stepped run reads a sensor at most this often per hop (opening it, then its data).
MAX_POLLS_PER_HOP = 8

Output = Callable[[str, dict], None]


@dataclass(frozen=True)
class Hop:
    """What one hop computed, for the stages that build on it."""

    t_ns: int
    vitals: Vitals
    physio: ModalityEstimate | None
    sensors: dict[str, dict]


class HopStage(Protocol):
    """A stage stepped on every hop after the vitals (the pain estimate is one): it gets the
    hop and returns the messages to publish, as ``(topic, message)`` pairs."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def step(self, hop: Hop) -> list[tuple[str, dict]]: ...


class Pipeline:
    """The board's readers, the queue, the signal path and the modalities on the hop.

    Built by a composition root (``device.app.root``) from its parts; stages that build on the
    hop (``add_stage``), outputs (``add_output``) and block taps (``add_block_tap``) are added
    before ``start``.
    """

    def __init__(self, config: PainmonConfig, clock: Clock, *, board: Board,
                 envelope: Envelope, alarms: AlarmBook, face: FaceWorker | None = None,
                 physio: PhysioStage | None = None, physio_reason: str | None = None,
                 outputs: list[Output] | None = None, reader_restart_budget: int = 5) -> None:
        self.config = config
        self.clock = clock
        self.board = board
        self.envelope = envelope
        self.alarms = alarms
        self.face = face
        self.physio, self.physio_reason = physio, physio_reason
        self.outputs = list(outputs or [])
        self.stages: list[HopStage] = []
        self.hops = 0
        self.queue: DropOldestQueue = DropOldestQueue(config.processing.queue_blocks)
        self.readers = [BusReader(name, sensors, self.queue.put, clock)
                        for name, sensors in board.sensors_by_bus.items()]
        self.vitals = VitalsTracker(window_s=config.processing.window_s,
                                    hop_s=config.processing.hop_s)
        self.reader_restart_budget = reader_restart_budget
        self.reader_crashes: list[str] = []
        self.alarms.listeners.append(self._publish_alarm)
        self.health = Health(board, alarms, clock, queue=self.queue, readers=self.readers,
                             face=face)
        self._stop = Wake()  # set from a signal handler: no lock (device.processing.wake)
        self._next_hop_ns: int | None = None
        self._stepped = False
        # Called with the hop count after each completed hop (the systemd watchdog), and with
        # the blocks each hop drained (the recorder).
        self.hop_listeners: list[Callable[[int], None]] = []
        self.block_taps: list[Callable[[list], None]] = []
        self.physio_estimate: ModalityEstimate | None = None

    def add_stage(self, stage: HopStage) -> None:
        self.stages.append(stage)

    def add_output(self, output: Output) -> None:
        self.outputs.append(output)

    def add_block_tap(self, tap: Callable[[list], None]) -> None:
        self.block_taps.append(tap)

    # -- life --------------------------------------------------------------------------------
    def start(self) -> None:
        for reader in self.readers:
            reader.start()
        if self.face is not None:
            self.face.start()
        for stage in self.stages:
            stage.start()
        self._next_hop_ns = self.clock.now_ns() + round(self.config.processing.hop_s * 1e9)

    def request_stop(self) -> None:
        """End ``run`` soon: a flag and a wake-up, safe from a signal handler."""
        self._stop.set()
        self.health.wake.set()

    def stop(self) -> None:
        self.request_stop()
        for reader in self.readers:
            reader.stop()
        if self.face is not None:
            self.face.stop()
        for stage in self.stages:
            stage.stop()
        for sensor in self.board.sensors:
            sensor.close()
        self.board.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the loop ----------------------------------------------------------------------------
    def run(self, seconds: float | None = None) -> None:
        """Step on the hop until ``stop()`` or until ``seconds`` of clock time have passed."""
        if self._next_hop_ns is None:
            self.start()
        end_ns = None if seconds is None else self.clock.now_ns() + round(seconds * 1e9)
        speed = getattr(self.clock, "speed", 1.0)
        while not self._stop.is_set():
            now = self.clock.now_ns()
            if end_ns is not None and now >= end_ns:
                break
            if now >= self._next_hop_ns:
                self.step(self._next_hop_ns)
                self._next_hop_ns += round(self.config.processing.hop_s * 1e9)
                if self._next_hop_ns < now:  # fell behind by more than a hop: skip, don't pile up
                    log.warning("processing fell behind by %.1f s", (now - self._next_hop_ns) / 1e9)
                    self._next_hop_ns = now + round(self.config.processing.hop_s * 1e9)
                continue
            wait_ns = self._next_hop_ns - now
            if end_ns is not None:
                wait_ns = min(wait_ns, end_ns - now)
            # A sensor changing state wakes the loop so its alarm goes out at once.
            if self.health.wake.wait(max(0.0, wait_ns / 1e9 / speed)):
                self.health.wake.clear()
                self.health.update()

    def run_every_hop(self, seconds: float) -> None:
        """Every hop in order, as fast as this machine goes, on a ``SteppedClock`` that only
        this loop moves: before each hop the sensors due by then are read here, in this
        thread, instead of by the reader threads. The same input then gives the same messages
        every time, and no hop is skipped however slow the machine (``painmon replay --exact``).
        """
        if not hasattr(self.clock, "advance_to"):
            raise TypeError("run_every_hop needs a clock that only it moves (SteppedClock)")
        if self.face is not None:
            raise ValueError("run_every_hop: the face reads a live camera; disable it")
        self._stepped = True
        for stage in self.stages:
            stage.start()
        hop_ns = round(self.config.processing.hop_s * 1e9)
        t_ns = self.clock.now_ns() + hop_ns
        end_ns = self.clock.now_ns() + round(seconds * 1e9)
        while not self._stop.is_set() and t_ns <= end_ns:
            self.clock.advance_to(t_ns)
            for reader in self.readers:
                # A sensor opened at t is read at t as well; a bound keeps a broken one finite.
                for _ in range(MAX_POLLS_PER_HOP):
                    if reader.poll_due() > t_ns:
                        break
            self.step(t_ns)
            t_ns += hop_ns

    def step(self, t_ns: int) -> dict:
        """One hop: drain the queue, update the signal path, publish. Returns the vitals message."""
        self._supervise_readers()
        self.alarms.tick()
        blocks = self.queue.drain()
        self.health.observe(blocks)
        self.health.update()
        self._tap(blocks)
        for block in blocks:
            self.vitals.push(block)
        vitals = self.vitals.update(t_ns)
        self.hops += 1
        message = self.envelope("painmon.vitals/1")
        message.update(vitals.to_dict())
        message.pop("t_ns", None)
        message["physio"] = self._physio(blocks)
        message["sensors"] = self.sensor_states()
        self.publish("vitals", message)
        self.publish("health", {**self.envelope("painmon.health/1"), **self.health.message(),
                                "sw_version": painmon_version()})
        if self.face is not None:
            self.publish("face", self._face_message(t_ns))
        hop = Hop(t_ns, vitals, self.physio_estimate, message["sensors"])
        for stage in self.stages:
            for topic, stage_message in stage.step(hop):
                self.publish(topic, stage_message)
        for listener in self.hop_listeners:
            listener(self.hops)
        return message

    def _tap(self, blocks: list) -> None:
        for tap in self.block_taps:
            try:
                tap(blocks)
            except Exception:  # noqa: BLE001 - a failing recorder must not stop the vitals
                log.exception("block tap %r failed", tap)

    def _physio(self, blocks) -> dict:
        if self.physio is None:
            return {"state": "missing", "reason": self.physio_reason}
        try:
            self.physio_estimate = None
            self.physio.push(blocks)
            self.physio_estimate = self.physio.process()
            return {"state": "ok", **self.physio_estimate.to_dict()}
        except Exception as exc:  # noqa: BLE001 - a model failure must not stop the vitals
            log.exception("physio modality failed")
            return {"state": "error", "reason": describe_error(exc)}

    def _face_message(self, t_ns: int) -> dict:
        message = self.envelope("painmon.face/1")
        estimate = self.face.latest(t_ns, max_age_s=2 * self.config.processing.hop_s)
        message.update(estimate.to_dict() if estimate is not None else
                       {"modality": "face", "score": None, "confidence": 0.0, "quality": 0.0,
                        "features": {}, "flags": ["no_estimate"]})
        message["frames"] = int((estimate.features.get("frames", 0) if estimate is not None else 0) or 0)
        message["camera"] = self.face.status()
        return message

    def _publish_alarm(self, event: str, alarm: Alarm) -> None:
        message = self.envelope("painmon.alarm/1")
        message["event"] = event
        message.update(alarm.to_dict())
        self.publish("alarm", message)

    def sensor_states(self) -> dict[str, dict]:
        return self.health.sensor_states()  # the same states as the health message

    def publish(self, topic: str, message: dict) -> None:
        for output in self.outputs:
            try:
                output(topic, message)
            except Exception:  # noqa: BLE001 - one broken output must not stop the others
                log.exception("output %r failed on %s", output, topic)

    def _supervise_readers(self) -> None:
        if self.face is not None and not self._stop.is_set() and self.face.supervise():
            log.error("camera thread had stopped; restarted (%d)", self.face.restarts)
        if self._stepped:  # no reader threads: run_every_hop reads the sensors itself
            return
        for reader in self.readers:
            if reader.alive() or self._stop.is_set():
                continue
            reason = f"reader {reader.name} stopped: {reader.crash!r}"
            restart = reader.restarts < self.reader_restart_budget
            if reader.crash is not None or restart:  # each crash recorded once
                self.reader_crashes.append(reason)
                reader.restarts += restart
                self.health.reader_crashed(reader, restart, self.reader_restart_budget)
                reader.crash = None
            if restart:
                reader.start()
