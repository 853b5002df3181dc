"""The composition root: every part of one run of the monitor, built with explicit arguments.

The device (``painmon run``), the demo and the replay all run what ``build_monitor`` builds;
they differ in the clock, the board (the kernel's buses, the emulated chips, or a recording)
and a few settings. The parts that reach the outside (MQTT, the recorder, systemd) are added
by ``device.app.device`` on top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gpiozero import Factory

from sensors.clock import Clock

from device.acquisition.board import Board, build_board
from device.care.bedside import Bedside
from device.care.pain import PainStage
from device.config import PainmonConfig
from device.config.paths import default_model_dir
from device.config.sections import DEMO_CAMERA
from device.processing.alarms import AlarmBook
from device.processing.answered import ANSWERED_FILE, AnsweredRequests
from device.processing.commands import CommandRouter
from device.processing.envelope import Envelope
from device.processing.face import FaceWorker
from device.processing.physio import PhysioStage, open_physio
from device.processing.pipeline import Output, Pipeline
from device.processing.timesync import WallClock


@dataclass
class Monitor:
    """Everything one run of the monitor is made of, as ``build_monitor`` wired it."""

    config: PainmonConfig
    clock: Clock
    wall: WallClock
    envelope: Envelope
    alarms: AlarmBook
    commands: CommandRouter
    board: Board
    face: FaceWorker | None
    physio: PhysioStage | None
    pipeline: Pipeline
    pain: PainStage
    bedside: Bedside


def emulated_pin_factory() -> Factory:
    """The emulated board's GPIO: gpiozero's mock pins, one factory for the chips' data-ready
    lines, the buttons and the alarm output (the one a test installed, if any). Its pins keep
    a bounded history of their states: the demo runs for days."""
    from gpiozero import Device

    from sensors.emulated.pins import bounded_mock_factory

    return Device.pin_factory or bounded_mock_factory()


def build_monitor(config: PainmonConfig, clock: Clock, outputs: list[Output] | None = None, *,
                  board: Board | None = None, boot_id: str | None = None,
                  wall: WallClock | None = None,
                  envelope_extra: Callable[[], dict] | None = None,
                  pin_factory: Factory | None = None, face_calibrate_frames: int = 0,
                  face_follows_scenario: bool = False,
                  reader_restart_budget: int = 5,
                  wall_s: Callable[[], float] | None = None) -> Monitor:
    """Build the monitor ``config`` describes, on ``clock``.

    ``board`` replaces the one the configuration describes (a replay's recording);
    ``face_follows_scenario`` makes the demo photo grimace with the emulated patient's pain;
    ``face_calibrate_frames`` takes the first frames as the neutral face; ``wall_s`` is the
    wall time (seconds since the epoch) the stays' doses are timed on (default: real time,
    moving with ``clock``).
    """
    wall = wall or WallClock()
    envelope = Envelope(config.device_id, boot_id, synced=wall.synced, extra=envelope_extra)
    alarms = AlarmBook(clock)
    c = config.commands
    commands = CommandRouter(clock, rate_per_s=c.rate_per_s, burst=c.burst, max_age_s=c.max_age_s,
                             answered=AnsweredRequests(Path(config.state_dir) / ANSWERED_FILE))
    if pin_factory is None and config.hardware == "emulated":
        pin_factory = emulated_pin_factory()
    if board is None:
        board = build_board(config, clock, pin_factory=pin_factory)
    physio, physio_reason = open_physio()
    face = None
    if config.face.enabled:
        expression = None
        if (face_follows_scenario and board.emulated is not None
                and config.face.camera == DEMO_CAMERA):
            from sensors.emulated.expression import pain_expression

            expression = pain_expression(board.emulated.simulator.scenario)
        face = FaceWorker(config.face, clock, config.face.model_dir or default_model_dir(),
                          calibrate_frames=face_calibrate_frames, expression=expression)
    pipeline = Pipeline(config, clock, board=board, envelope=envelope, alarms=alarms, face=face,
                        physio=physio, physio_reason=physio_reason, outputs=outputs,
                        reader_restart_budget=reader_restart_budget)
    pain = PainStage(config, clock, alarms=alarms, face=face, physio=physio, envelope=envelope,
                     pin_factory=pin_factory)
    pain.register(commands)
    pipeline.add_stage(pain)
    bedside = Bedside(config, clock, pain=pain, alarms=alarms, publish=pipeline.publish,
                      envelope=envelope, wall_s=wall_s)
    bedside.register(commands)
    pipeline.add_stage(bedside)
    return Monitor(config, clock, wall, envelope, alarms, commands, board, face, physio,
                   pipeline, pain, bedside)
