"""The two ways painmon runs: the device (``painmon run``) and the demo (``painmon demo``)."""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
import threading
import uuid
from contextlib import ExitStack
from typing import Callable, TextIO

import paho.mqtt.client as mqtt

from sensors.clock import MonotonicClock, ScaledClock

from device.config import PainmonConfig, default_config, load_config
from device.modalities import face_follows_scenario
from device.mqtt import MqttLink
from device.notify import ServiceNotifier
from device.pipeline import Pipeline
from device.recorder import attach_recorder

log = logging.getLogger(__name__)

def mqtt_output(config: PainmonConfig, link: MqttLink, pipeline: Pipeline):
    """Wire the pipeline to MQTT: outbox, live topics, commands, alarms, discovery
    (``device/delivery.py``). Call ``.stop()`` on the result before the link stops."""
    from device.delivery import MqttOutput

    output = MqttOutput(config, link, models=pipeline_models(config)).attach(pipeline).start()
    pipeline.outputs.append(output)
    return output


def pipeline_models(config: PainmonConfig) -> str:
    """The model files' versions, sent as an MQTT 5 user property with every message."""
    from pathlib import Path

    from device.delivery import model_versions

    paths = sorted((Path(__file__).resolve().parent.parent / "models" / "physio").glob("*int8.tflite"))
    if config.face.enabled and config.face.model_dir is not None:
        paths += sorted(Path(config.face.model_dir).glob("*.tflite"))
    return model_versions(paths)


def _stop_on_signals(pipeline: Pipeline) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: pipeline.stop())


def _freeze_startup_heap() -> None:
    """Move everything built at start-up (modules, models, the pipeline) out of the garbage
    collector's reach: a full collection then scans only what the loop creates, instead of
    pausing every thread for tens of milliseconds once a minute."""
    gc.collect()
    gc.freeze()


def run_device(config: PainmonConfig, seconds: float | None = None) -> int:
    """Run on the real clock until SIGTERM/SIGINT (or ``seconds``)."""
    boot_id = uuid.uuid4().hex[:12]
    clock = MonotonicClock()
    with MqttLink(config.mqtt, config.device_id, boot_id) as link:
        pipeline = Pipeline(config, clock, [], boot_id=boot_id)
        output = mqtt_output(config, link, pipeline)
        service = ServiceNotifier.from_env().attach(pipeline)  # READY, watchdog, STOPPING
        recorder = attach_recorder(config, pipeline)
        _stop_on_signals(pipeline)
        _freeze_startup_heap()
        try:
            pipeline.run(seconds)
        finally:
            service.stop()
            pipeline.stop()
            recorder.stop()
            output.stop()
    return 0


# -- the demo --------------------------------------------------------------------------------
def _fmt(value, spec: str, missing: str = "  --") -> str:
    return missing if value is None else format(value, spec)


def _physio_text(physio: dict) -> str:
    if physio.get("state") != "ok":
        return f"   physio {physio.get('state', '--')}"
    return (f"   physio {_fmt(physio.get('score'), '4.1f')}/10 "
            f"(confidence {physio.get('confidence', 0):.2f})")


def _pain_text(msg: dict) -> str:
    parts = []
    for name, c in (msg.get("contributions") or {}).items():
        top = ", ".join(f"{k} {v:.2f}" for k, v in list((c.get("top_features") or {}).items())[:2])
        parts.append(f"{name} {_fmt(c.get('score'), '4.1f')} x{c.get('weight', 0):.2f}"
                     + (f" ({top})" if top else ""))
    alarm = msg.get("alarm")
    return (f"pain    {_fmt(msg.get('score'), '4.1f')}/10 {msg.get('level') or '--':8} "
            f"confidence {msg.get('confidence', 0):.2f}   " + "   ".join(parts)
            + (f"   ALARM {alarm['alarm_id']} {alarm['priority']} {alarm['state']}" if alarm else "")
            + ("   personalised" if msg.get("personalised") else "")
            + (f"   [{', '.join(msg['flags'])}]" if msg.get("flags") else ""))


def _demo_pain(config: PainmonConfig) -> PainmonConfig:
    """The demo's pain episode lasts a minute: a lower threshold and shorter times let its
    alarm fire, escalate and clear within one loop of the scenario."""
    return config.model_copy(update={"pain": config.pain.model_copy(update={
        "alarm_threshold": 4.0, "alarm_after_s": 10.0, "alarm_clear_after_s": 10.0,
        "alarm_escalate_after_s": 30.0})})


#: The demo's patient looks neutral for the first seconds: the face path records its baseline
#: over this much of them (the median of the frames), and the pain estimate waits for it.
DEMO_FACE_CALIBRATION_S = 1.0


def _demo_wiring(config: PainmonConfig) -> PainmonConfig:
    """The demo board has the optional data-ready lines wired as in the README's wiring table:
    the MAX30102's INT on GPIO17 and the ADS1115's ALERT/RDY on GPIO27, on mock pins."""
    s = config.sensors
    return config.model_copy(update={"sensors": s.model_copy(update={
        "ppg": s.ppg.model_copy(update={"int_pin": 17}),
        "adc": s.adc.model_copy(update={"alert_pin": 27})})})


def format_message(topic: str, payload: bytes) -> str:
    """One readable line for a message the device published."""
    kind = topic.rsplit("/", 1)[-1]
    try:
        msg = json.loads(payload)
    except ValueError:
        return f"{kind:7} {payload[:80]!r}"
    if kind == "vitals":
        hr = msg.get("hr_bpm") or {}
        q = msg.get("quality") or {}
        sensors = msg.get("sensors") or {}
        down = [f"{n} {s.get('state')}" for n, s in sensors.items() if s.get("state") != "ok"]
        return (f"vitals  #{msg.get('seq', '?'):<4} HR ppg {_fmt(hr.get('ppg'), '5.1f')} "
                f"ecg {_fmt(hr.get('ecg'), '5.1f')} bpm   EDA {_fmt(msg.get('eda_us'), '5.2f')} uS   "
                f"motion {_fmt(msg.get('motion_g'), '5.3f')} g   quality "
                + " ".join(f"{k} {v:.2f}" for k, v in q.items())
                + _physio_text(msg.get("physio") or {})
                + (f"   [{', '.join(down)}]" if down else ""))
    if kind == "face":
        f = msg.get("features") or {}
        camera = msg.get("camera") or {}
        if camera.get("state") != "ok":
            return f"face    camera {camera.get('state')}: {camera.get('reason', '')}"
        if msg.get("score") is None:
            return f"face    no face   flags {','.join(msg.get('flags') or [])}"
        emotions = {k[8:]: v for k, v in f.items() if k.startswith("emotion_") and v is not None}
        top = max(emotions, key=emotions.get) if emotions else "--"
        return (f"face    PSPI {_fmt(f.get('pspi'), '4.1f')}  "
                + " ".join(f"{au.upper()} {_fmt(f.get(au), '3.1f')}"
                           for au in ("au4", "au6", "au7", "au9", "au10", "au43"))
                + f"   emotion {top}   quality {msg.get('quality', 0):.2f} "
                f"confidence {msg.get('confidence', 0):.2f}"
                + (f"   [{', '.join(msg['flags'])}]" if msg.get("flags") else ""))
    if kind == "pain":
        return _pain_text(msg)
    if kind == "alarm" and "event" in msg:
        return (f"alarm   {msg['event'].upper()} #{msg.get('alarm_id')} {msg.get('kind')}/"
                f"{msg.get('source')} {msg.get('priority')}: {msg.get('message', '')}")
    if kind == "status":
        return f"status  {msg.get('state')} (boot {msg.get('boot_id')})"
    return f"{kind:7} {json.dumps(msg)[:160]}"


class ConsoleSubscriber:
    """Subscribes to everything the device publishes and prints each message as one line."""

    def __init__(self, host: str, port: int, topic: str, protocol: str, out: TextIO,
                 annotate: Callable[[str], str] | None = None) -> None:
        proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=proto,
                                  client_id=f"painmon-demo-console-{uuid.uuid4().hex[:6]}")
        self.topic = topic
        self.out = out
        self.annotate = annotate
        self.received = 0
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        self.received += 1
        line = format_message(message.topic, message.payload)
        if self.annotate is not None and message.topic.endswith("/vitals"):
            line += self.annotate(message.topic)
        print(line, file=self.out, flush=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def parse_broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--broker must be HOST:PORT, got {text!r}")
    return host, int(port)


def with_broker(config: PainmonConfig, broker: str | None, stack: ExitStack,
                out: TextIO) -> PainmonConfig:
    """The configuration pointed at ``broker`` (HOST:PORT), else at localhost:1883 when a
    broker answers there, else at a loopback-only broker started for this run (closed by
    ``stack``)."""
    if broker:
        host, port = parse_broker(broker)
        protocol = config.mqtt.protocol
    else:
        # Only a run without a broker may start one (asyncio costs ~1 MB of RSS).
        from device.broker import EmbeddedBroker, broker_answers

        if broker_answers("127.0.0.1", 1883):
            host, port, protocol = "127.0.0.1", 1883, config.mqtt.protocol
        else:
            embedded = stack.enter_context(EmbeddedBroker())
            host, port, protocol = embedded.host, embedded.port, embedded.protocol
            print(f"no MQTT broker on localhost:1883; started one on {host}:{port}", file=out)
    return config.model_copy(update={"mqtt": config.mqtt.model_copy(
        update={"host": host, "port": port, "protocol": protocol})})


def run_demo(*, seconds: float | None = None, broker: str | None = None, speed: float = 1.0,
             config_path: str | None = None, camera: str | None = None,
             out: TextIO = sys.stdout, quiet: bool = False, record: str | None = None,
             faults: list | None = None) -> int:
    """The emulated board through the real drivers and signal path, published over MQTT."""
    config = (load_config(config_path) if config_path
              else _demo_wiring(_demo_pain(default_config())))
    config = config.model_copy(update={"hardware": "emulated"})
    if camera is not None:
        config = config.model_copy(update={"face": config.face.model_copy(update={"camera": camera})})
    boot_id = uuid.uuid4().hex[:12]
    with ExitStack() as stack:
        config = with_broker(config, broker, stack, out)
        host, port, protocol = config.mqtt.host, config.mqtt.port, config.mqtt.protocol
        topic_root = f"{config.mqtt.topic_prefix}/{config.device_id}"
        print(f"painmon demo: emulated board -> drivers -> signal path -> MQTT {host}:{port} "
              f"topic {topic_root}/#  (speed x{speed:g}, Ctrl-C stops)", file=out, flush=True)
        clock = ScaledClock(speed)
        link = stack.enter_context(MqttLink(config.mqtt, config.device_id, boot_id))
        # The demo's face is at rest in its first seconds: take them as the neutral face.
        pipeline = Pipeline(config, clock, [], boot_id=boot_id,
                            face_calibrate_frames=round(DEMO_FACE_CALIBRATION_S * config.face.fps))
        stack.callback(mqtt_output(config, link, pipeline).stop)
        simulator = pipeline.board.emulated.simulator
        if faults:
            from device.demo_faults import schedule_faults

            schedule_faults(pipeline.board.emulated, faults)
        # The photo's face grimaces with the scenario's pain (none in the calibration seconds).
        face_follows_scenario(pipeline.face, simulator.scenario)
        recorder = attach_recorder(config, pipeline, record)
        stack.callback(recorder.stop)

        def truth(_topic: str) -> str:
            t_s = clock.now_ns() / 1e9
            window_s = config.processing.window_s
            if t_s < window_s:
                return ""
            return (f"   (simulated: HR {simulator.hr_bpm(t_s - window_s, t_s):5.1f}, "
                    f"EDA {float(simulator.eda_us([t_s])[0]):5.2f})")

        if not quiet:
            console = ConsoleSubscriber(host, port, f"{topic_root}/#", protocol, out, truth)
            stack.callback(console.close)
        _stop_on_signals(pipeline)
        _freeze_startup_heap()
        try:
            pipeline.run(seconds)
        finally:
            pipeline.stop()
    return 0
