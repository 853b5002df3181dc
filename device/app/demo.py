"""``painmon demo``: the emulated board through the real drivers, signal path and models,
published over MQTT, with a console that prints every message beside the simulated truth."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import ExitStack
from typing import TextIO

from sensors.clock import ScaledClock

from device.app.broker_choice import with_broker
from device.app.console import console_for, where
from device.app.demo_faults import DemoFault, schedule_faults
from device.app.device import connect, freeze_startup_heap, stop_on_signals
from device.app.root import Monitor, build_monitor
from device.comms.link import MqttLink
from device.config import PainmonConfig, default_config, load_config
from device.processing.envelope import new_boot_id


def demo_pain(config: PainmonConfig) -> PainmonConfig:
    """The demo's pain episode lasts a minute: a lower threshold and shorter times let its
    alarm fire, escalate and clear within one loop of the scenario."""
    return config.model_copy(update={"pain": config.pain.model_copy(update={
        "alarm_threshold": 4.0, "alarm_after_s": 10.0, "alarm_clear_after_s": 10.0,
        "alarm_escalate_after_s": 30.0})})


#: The demo's dose is reassessed after half a minute (whatever the route), within its loop.
DEMO_REASSESS_MIN = 0.5

log = logging.getLogger(__name__)


def demo_care(config: PainmonConfig) -> PainmonConfig:
    """The reassessment after the demo's dose falls due within the scenario's loop."""
    reassess = config.care.reassess_min
    quick = reassess.model_copy(update=dict.fromkeys(type(reassess).model_fields, DEMO_REASSESS_MIN))
    return config.model_copy(update={"care": config.care.model_copy(update={"reassess_min": quick})})


class CareScript:
    """Plays the scenario's bedside events (``Scenario.care``) through the command router when
    the clock passes their time, once each; each result goes out on ``cmd/result`` as an
    answer to an MQTT command would. Call on every hop (a hop listener)."""

    def __init__(self, monitor: Monitor, events) -> None:
        self.monitor = monitor
        self.events = list(events)
        admits = [e[2].get("reference") for e in self.events if e[1] == "admit"]
        stay = monitor.bedside.stay
        if stay is not None and stay.reference in admits:  # an earlier demo run's patient
            monitor.bedside.discharge(stay.reference)

    def __call__(self, _hops: int = 0) -> None:
        t_s = self.monitor.clock.now_ns() / 1e9
        while self.events and self.events[0][0] <= t_s:
            _, name, payload = self.events.pop(0)
            result = self.monitor.commands.handle(name, json.dumps(payload).encode())
            log.info("bedside script: %s %s", name, "ok" if result["ok"] else result.get("reason"))
            message = self.monitor.envelope(result["schema"])
            message.update(result)
            self.monitor.pipeline.publish("cmd/result", message)


#: The demo's patient looks neutral for the first seconds: the face path records its baseline
#: over this much of them (the median of the frames), and the pain estimate waits for it.
DEMO_FACE_CALIBRATION_S = 1.0


def demo_wiring(config: PainmonConfig) -> PainmonConfig:
    """The demo board has the optional data-ready lines wired as in the README's wiring table:
    the MAX30102's INT on GPIO17 and the ADS1115's ALERT/RDY on GPIO27, on mock pins."""
    s = config.sensors
    return config.model_copy(update={"sensors": s.model_copy(update={
        "ppg": s.ppg.model_copy(update={"int_pin": 17}),
        "adc": s.adc.model_copy(update={"alert_pin": 27})})})


def demo_config(config_path: str | None = None, camera: str | None = None) -> PainmonConfig:
    """The demo's configuration: the file given, else the defaults with the demo's pain
    episode and wiring; always on the emulated board."""
    config = (load_config(config_path) if config_path
              else demo_care(demo_wiring(demo_pain(default_config()))))
    config = config.model_copy(update={"hardware": "emulated"})
    if camera is not None:
        config = config.model_copy(update={"face": config.face.model_copy(update={"camera": camera})})
    return config


def run_demo(*, seconds: float | None = None, broker: str | None = None, speed: float = 1.0,
             config_path: str | None = None, camera: str | None = None,
             out: TextIO = sys.stdout, quiet: bool = False, record: str | None = None,
             faults: list[DemoFault] | None = None) -> int:
    """The emulated board through the real drivers and signal path, published over MQTT;
    ``faults`` play sensor faults on the emulated patient at their times."""
    config = demo_config(config_path, camera)
    boot_id = new_boot_id()
    with ExitStack() as stack:
        config = with_broker(config, broker, stack, out)
        print(f"painmon demo: emulated board -> drivers -> signal path -> {where(config)}  "
              f"(speed x{speed:g}, Ctrl-C stops)", file=out, flush=True)
        clock = ScaledClock(speed)
        link = stack.enter_context(MqttLink(config.mqtt, config.device_id, boot_id))
        # The demo's face is at rest in its first seconds: take them as the neutral face; then
        # the photo's face grimaces with the scenario's pain.
        monitor = build_monitor(
            config, clock, boot_id=boot_id, face_follows_scenario=True,
            face_calibrate_frames=round(DEMO_FACE_CALIBRATION_S * config.face.fps))
        connect(monitor, link, stack, record=record)
        simulator = monitor.board.emulated.simulator
        if faults:
            schedule_faults(monitor.board.emulated, faults)
        script = CareScript(monitor, getattr(simulator.scenario, "care", ()))

        def truth(_topic: str) -> str:
            t_s = clock.now_ns() / 1e9
            window_s = config.processing.window_s
            if t_s < window_s:
                return ""
            return (f"   (simulated: HR {simulator.hr_bpm(t_s - window_s, t_s):5.1f}, "
                    f"EDA {float(simulator.eda_us([t_s])[0]):5.2f})")

        if not quiet:
            console = console_for(config, out, truth)
            stack.callback(console.close)
        script()  # what is due at once (the admission) before the first hop
        monitor.pipeline.hop_listeners.append(script)
        stop_on_signals(monitor.pipeline)
        freeze_startup_heap()
        try:
            monitor.pipeline.run(seconds)
        finally:
            monitor.pipeline.stop()
    return 0
