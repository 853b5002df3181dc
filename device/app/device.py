"""``painmon run``: the monitor on the real clock, published over MQTT, under systemd.

``connect`` adds what reaches the outside to a monitor that ``device.app.root`` built: the
MQTT output (outbox, live topics, commands, alarms, discovery) and the recorder. The demo and
the replay run the same monitor through the same ``connect``.
"""

from __future__ import annotations

import gc
import signal
import threading
from contextlib import ExitStack
from pathlib import Path

from sensors.clock import MonotonicClock

from device.app.notify import ServiceNotifier
from device.app.root import Monitor, build_monitor
from device.comms.delivery import MqttOutput, model_versions
from device.comms.link import MqttLink
from device.config import PainmonConfig
from device.processing.envelope import new_boot_id
from device.processing.pipeline import Pipeline
from device.recording.writer import Recorder, attach_recorder


def monitor_models(config: PainmonConfig) -> str:
    """The model files' versions, sent as an MQTT 5 user property with every message: the
    physio model the device runs, and the face models when the face is on."""
    from models.physio.estimator import DEFAULT_MODEL

    paths = [DEFAULT_MODEL]
    if config.face.enabled and config.face.model_dir is not None:
        paths += sorted(Path(config.face.model_dir).glob("*.tflite"))
    return model_versions(paths)


def mqtt_output(monitor: Monitor, link: MqttLink) -> MqttOutput:
    """The monitor published over ``link``: outbox, live topics, commands, alarms, discovery
    (``device.comms.delivery``). Call ``.stop()`` on the result before the link stops."""
    output = MqttOutput(monitor.config, link, monitor.envelope, alarms=monitor.alarms,
                        commands=monitor.commands, clock=monitor.clock,
                        models=monitor_models(monitor.config))
    monitor.pipeline.add_output(output.start())
    monitor.pipeline.health.sections["storage"] = output.storage_health
    return output


def connect(monitor: Monitor, link: MqttLink, stack: ExitStack, *,
            record: str | None = None, recorder: bool = True,
            drain_s: float = 2.0) -> MqttOutput:
    """MQTT and the recorder on ``monitor``, each stopped by ``stack`` (the recorder first)."""
    output = mqtt_output(monitor, link)
    stack.callback(output.stop, drain_s=drain_s)
    if recorder:
        rec = attach_recorder(monitor.config, monitor.pipeline, monitor.commands,
                              boot_id=monitor.envelope.boot_id, wall=monitor.wall, directory=record)
        stack.callback(rec.stop)
        if record is None and monitor.config.recording.dir is None:
            follow_stays(monitor, rec)
    return output


def follow_stays(monitor: Monitor, recorder: Recorder) -> None:
    """Record into the open stay's folder (``<state_dir>/stays/<id>/recordings``), else into
    ``<state_dir>/recordings``: a stay's recordings are exported and deleted with it."""
    outside = recorder.directory

    def follow(stay_dir: Path | None) -> None:
        recorder.move_to(outside if stay_dir is None else stay_dir / "recordings")

    monitor.bedside.stay_listeners.append(follow)
    if monitor.bedside.stay is not None:
        follow(monitor.bedside.store.directory(monitor.bedside.stay))


def stop_on_signals(pipeline: Pipeline) -> None:
    """SIGTERM and SIGINT end ``pipeline.run``: the handler only sets a flag and wakes the
    loop; the stopping itself happens where ``run`` returns, never inside the handler."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: pipeline.request_stop())


def freeze_startup_heap() -> None:
    """Move everything built at start-up (modules, models, the pipeline) out of the garbage
    collector's reach: a full collection then scans only what the loop creates, instead of
    pausing every thread for tens of milliseconds once a minute."""
    gc.collect()
    gc.freeze()


def run_device(config: PainmonConfig, seconds: float | None = None) -> int:
    """Run on the real clock until SIGTERM/SIGINT (or ``seconds``)."""
    boot_id = new_boot_id()
    with ExitStack() as stack:
        link = stack.enter_context(MqttLink(config.mqtt, config.device_id, boot_id))
        monitor = build_monitor(config, MonotonicClock(), boot_id=boot_id)
        connect(monitor, link, stack)
        service = ServiceNotifier.from_env().attach(monitor.pipeline)  # READY, watchdog, STOPPING
        stop_on_signals(monitor.pipeline)
        freeze_startup_heap()
        try:
            monitor.pipeline.run(seconds)
        finally:
            service.stop()
            monitor.pipeline.stop()
    return 0

