"""The pipeline: reader threads → bounded queue → one processing loop on the hop → outputs.

The loop owns time: every ``hop_s`` of the clock it drains the queue into the signal path,
computes the vitals over the latest window and hands one message per topic to the outputs
(MQTT, the console, a recorder). It also supervises the reader threads: a reader that crashed
is restarted within a budget, and the crash is reported, never silent.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timezone
from typing import Callable

from models.vitals import VitalsTracker
from sensors.clock import Clock

from device.acquisition import BusReader, SensorState, describe_error
from device.alarms import Alarm, AlarmBook
from device.commands import CommandRouter
from device.hardware import Board, build_board
from device.health import Health
from device.modalities import FaceWorker, PhysioStage
from device.pain import PainStage
from device.queues import DropOldestQueue
from device.timesync import WallClock
from device.version import painmon_version

log = logging.getLogger(__name__)
# A stepped run reads a sensor at most this often per hop (opening it, then its data).
MAX_POLLS_PER_HOP = 8

Output = Callable[[str, dict], None]


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Pipeline:
    def __init__(self, config, clock: Clock, outputs: list[Output] | None = None, *,
                 boot_id: str | None = None, board: Board | None = None,
                 reader_restart_budget: int = 5, face_calibrate_frames: int = 0) -> None:
        self.config = config
        self.clock = clock
        self.outputs = list(outputs or [])
        self.boot_id = boot_id or uuid.uuid4().hex[:12]
        self.seq = 0
        self._seq_lock = threading.Lock()
        self.hops = 0
        self.events: list[SensorState] = []
        self.queue: DropOldestQueue = DropOldestQueue(config.processing.queue_blocks)
        self.board = board or build_board(config, clock, on_state=self.events.append)
        self.readers = [BusReader(name, sensors, self.queue.put, clock)
                        for name, sensors in self.board.sensors_by_bus.items()]
        self.vitals = VitalsTracker(window_s=config.processing.window_s,
                                    hop_s=config.processing.hop_s)
        self.reader_restart_budget = reader_restart_budget
        self.reader_crashes: list[str] = []
        self.alarms = AlarmBook(clock)
        self.alarms.listeners.append(self._publish_alarm)
        self.commands = CommandRouter(clock)
        self.physio, self.physio_reason = self._physio_stage()
        self.face = None
        if config.face.enabled:
            from device.fetch_models import default_model_dir

            self.face = FaceWorker(config.face, clock, config.face.model_dir or default_model_dir(),
                                   calibrate_frames=face_calibrate_frames)
        self.health = Health(self.board, self.alarms, clock, queue=self.queue,
                             readers=self.readers, face=self.face)
        self._stop = threading.Event()
        self._next_hop_ns: int | None = None
        self._stepped = False
        # Called with the hop count after each completed hop (the systemd watchdog), and with
        # the blocks each hop drained (the recorder).
        self.hop_listeners: list[Callable[[int], None]] = []
        self.block_taps: list[Callable[[list], None]] = []
        self.wall = WallClock()
        self.physio_estimate = None
        self.pain = PainStage.for_pipeline(self)

    # -- life --------------------------------------------------------------------------------
    @staticmethod
    def _physio_stage() -> tuple[PhysioStage | None, str | None]:
        try:
            return PhysioStage(), None
        except Exception as exc:  # noqa: BLE001 - no model, no runtime: run without the modality
            log.warning("physio modality unavailable: %s", describe_error(exc))
            return None, describe_error(exc)

    def start(self) -> None:
        for reader in self.readers:
            reader.start()
        if self.face is not None:
            self.face.start()
        self.pain.start()
        self._next_hop_ns = self.clock.now_ns() + round(self.config.processing.hop_s * 1e9)

    def stop(self) -> None:
        self._stop.set()
        self.health.wake.set()
        for reader in self.readers:
            reader.stop()
        if self.face is not None:
            self.face.stop()
        self.pain.stop()
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
        self.pain.start()
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
        pain = self.pain.step(t_ns, vitals, self.physio_estimate, message["sensors"])
        if pain is not None:
            self.publish("pain", pain)
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
        message["camera"] = self.face.status()
        return message

    def _publish_alarm(self, event: str, alarm: Alarm) -> None:
        message = self.envelope("painmon.alarm/1")
        message["event"] = event
        message.update(alarm.to_dict())
        self.publish("alarm", message)

    def envelope(self, schema: str) -> dict:
        # Commands and alarms publish from other threads: boot_id + seq must stay unique.
        with self._seq_lock:
            self.seq += 1
            seq = self.seq
        return {"schema": schema, "device_id": self.config.device_id, "boot_id": self.boot_id,
                "seq": seq, "t": utc_now_iso(), "t_synced": self.wall.synced()}

    def sensor_states(self) -> dict[str, dict]:
        return self.health.sensor_states()  # the same states as the health message

    def publish(self, topic: str, message: dict) -> None:
        for output in self.outputs:
            try:
                output(topic, message)
            except Exception:  # noqa: BLE001 - one broken output must not stop the others
                log.exception("output %r failed on %s", output, topic)

    def _supervise_readers(self) -> None:
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
