"""The configuration's sections: one strict model per TOML table.

Every section forbids unknown keys and every field carries a description; the descriptions
are also the configuration reference (``device.config.reference``). The defaults run the
demo: emulated chips, a broker on localhost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from device.config.base import STRICT as _STRICT
from device.config.base import KeyedValueError, absolute_path
from device.config.paths import default_state_dir
from device.config.sensors import SensorsConfig

HARDWARE_ENV = "PAINMON_HARDWARE"


class MqttTlsConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(False, description="Connect over TLS (the broker's port is then "
                          "usually 8883).")
    ca_file: Path | None = Field(
        None, strict=False, description="CA certificate(s) to verify the broker with (PEM).",
        json_schema_extra={"default_doc": "the system's trusted CAs"})
    cert_file: Path | None = Field(
        None, strict=False, description="Client certificate (PEM), for brokers that ask for one.")
    key_file: Path | None = Field(
        None, strict=False, description="Private key of cert_file (PEM), if not inside it.")

    _paths = field_validator("ca_file", "cert_file", "key_file")(absolute_path)

    @model_validator(mode="after")
    def _key_needs_cert(self) -> MqttTlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise KeyedValueError("cert_file", "mqtt.tls.key_file is set without a cert_file")
        return self


class MqttConfig(BaseModel):
    model_config = _STRICT

    host: str = Field("127.0.0.1", min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port.")
    topic_prefix: str = Field(
        "painmon", description="First topic level(s): <topic_prefix>/<device_id>/<subtopic>."
    )
    client_id: str | None = Field(
        None, min_length=1, max_length=128, description="MQTT client identifier.",
        json_schema_extra={"default_doc": "painmon-<device_id>"},
    )
    keepalive_s: int = Field(
        30, ge=1, le=65535,
        description="Keepalive; the broker sends the last will after 1.5 x this of silence.",
    )
    qos: Literal[0, 1, 2] = Field(1, description="QoS of estimates, vitals and health.")
    protocol: Literal["5", "3.1.1"] = Field(
        "5", description='Protocol version; "3.1.1" for brokers without v5 (amqtt).'
    )
    reconnect_min_s: float = Field(
        0.5, ge=0.1, le=3600, description="First reconnect delay; doubles on each failure."
    )
    reconnect_max_s: float = Field(30.0, ge=0.1, le=3600, description="Longest reconnect delay.")
    tls: MqttTlsConfig = Field(default_factory=MqttTlsConfig, description="TLS.")
    username: str | None = Field(None, min_length=1, max_length=256,
                                 description="User name for the broker.")
    password_file: Path | None = Field(
        None, strict=False, description="File holding the broker password (first line).")
    password_credential: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="systemd credential holding the password ($CREDENTIALS_DIRECTORY/<name>, "
        "from LoadCredential=).")
    session_expiry_s: int = Field(
        3600, ge=0, le=7 * 86400, description="MQTT 5 session expiry: commands sent while the "
        "device is away for less than this are delivered when it is back (0: clean session).")
    will_delay_s: int = Field(
        5, ge=0, le=3600, description="MQTT 5 will delay: a reconnect within this does not "
        "announce offline.")
    live_expiry_s: int = Field(
        10, ge=1, le=3600, description="MQTT 5 message expiry of live vitals and face messages.")
    outbox_max_entries: int = Field(
        50_000, ge=10, le=10_000_000, description="Bound of the on-disk outbox (pain, alarms, "
        "command results); when full the oldest entry is evicted and counted.")
    ha_discovery: bool = Field(True, description="Publish Home Assistant MQTT discovery.")
    ha_discovery_prefix: str = Field(
        "homeassistant", min_length=1, description="Home Assistant's discovery topic prefix.")
    ha_state_every_s: float = Field(
        10.0, ge=0, le=3600, strict=False, description="Home Assistant gets measurements at "
        "most this often (device time; 0: on every change); pain level and alarms at once.")
    senml: bool = Field(False, description="Also publish the numeric values as SenML "
                        "(RFC 8428) on <prefix>/<device_id>/senml.")
    max_packet_bytes: int = Field(
        16384, ge=8192, le=1_048_576, description="MQTT 5 maximum packet size the device "
        "accepts (sent in CONNECT): the broker drops anything larger instead of delivering it.")

    _paths = field_validator("password_file")(absolute_path)

    @field_validator("topic_prefix", "ha_discovery_prefix")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        if any(c in value for c in "+#\0"):
            raise ValueError(f"must not contain MQTT wildcards (+, #) or NUL, got {value!r}")
        if "" in value.split("/"):
            raise ValueError(f"must not be empty or have empty levels, got {value!r}")
        if value.startswith("$"):
            raise ValueError(f"must not start with '$' (broker topics), got {value!r}")
        return value

    @model_validator(mode="after")
    def _reconnect_bounds(self) -> MqttConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise KeyedValueError("reconnect_max_s", f"must be >= mqtt.reconnect_min_s "
                                  f"({self.reconnect_min_s}), got {self.reconnect_max_s}")
        if self.password_file is not None and self.password_credential is not None:
            raise KeyedValueError("password_credential",
                                  "set mqtt.password_file or mqtt.password_credential, not both")
        if (self.password_file or self.password_credential) and self.username is None:
            raise KeyedValueError("username", "a password is configured but no mqtt.username")
        return self

    def client_id_for(self, device_id: str) -> str:
        """The MQTT client identifier: ``client_id``, else ``painmon-<device_id>``."""
        return self.client_id or f"painmon-{device_id}"


class CommandsConfig(BaseModel):
    model_config = _STRICT

    max_age_s: float = Field(
        60.0, ge=5, le=3600, strict=False, description="A command sent longer ago than this "
        "(its t) is refused as stale.")
    rate_per_s: float = Field(5.0, ge=0.1, le=100, strict=False,
                              description="Commands per second each role may send, sustained...")
    burst: int = Field(20, ge=1, le=1000, description="... and at once.")


class ProcessingConfig(BaseModel):
    model_config = _STRICT

    window_s: float = Field(10.0, ge=2, le=120, description="Analysis window length.")
    hop_s: float = Field(1.0, ge=0.1, le=10, description="Step between analysis windows.")
    queue_blocks: int = Field(
        256, ge=8, le=65536,
        description="Size of each bounded queue between threads (full: oldest dropped, counted).",
    )

    @model_validator(mode="after")
    def _hop_fits_window(self) -> ProcessingConfig:
        if self.hop_s > self.window_s:
            raise KeyedValueError(
                "hop_s", f"must be <= processing.window_s ({self.window_s}), got {self.hop_s}")
        return self


class SimulatorConfig(BaseModel):
    model_config = _STRICT

    seed: int = Field(1, ge=0, description="Random seed of the physiology simulator.")
    scenario: Literal["demo", "rest"] = Field(
        "demo", description="demo (rest, then pain episodes) or rest."
    )


#: The demo's camera: a still photograph that moves and grimaces (sensors.emulated.photo).
DEMO_CAMERA = "photo"
#: The camera a real device uses unless the configuration names another.
REAL_CAMERA = "picamera2"


class FaceConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(True, description="Run the face modality (camera, landmarks, AUs).")
    camera: str | None = Field(
        None, min_length=1, description='"picamera2", a V4L2 index like "0", a GStreamer pipeline, '
        'a folder of images, a video file, or "photo" (the demo\'s photograph, emulated only).',
        json_schema_extra={"default_doc": '"photo" with hardware = "emulated", else "picamera2"'},
    )
    fps: float = Field(10.0, ge=0.5, le=30, strict=False, description="Frames analysed per second.")
    tracking: bool = Field(
        True, description="Track the face from the last landmarks; detect only when lost.")
    num_threads: int = Field(1, ge=1, le=4, description="TFLite threads per model.")
    model_dir: Path | None = Field(
        None, strict=False, description="Where the fetched face models are.",
        json_schema_extra={"default_doc": "$PAINMON_MODEL_DIR, else ~/.cache/painmon/models"},
    )

    _paths = field_validator("model_dir")(absolute_path)


class PainConfig(BaseModel):
    model_config = _STRICT

    face_weight: float = Field(1.0, ge=0, le=10, strict=False,
                               description="Fusion prior of the face at full confidence.")
    physio_weight: float = Field(1.0, ge=0, le=10, strict=False,
                                 description="Fusion prior of the physiology at full confidence.")
    motion_high_g: float = Field(
        0.15, ge=0.01, le=2, strict=False,
        description="Limb motion from which the physiology is trusted less (flag motion_high).")
    smoothing_s: float = Field(5.0, ge=0, le=120, strict=False,
                               description="Time constant of the fused score's smoothing.")
    hysteresis: float = Field(0.5, ge=0, le=1.4, strict=False,
                              description="How far past a level boundary the score must go.")
    alarm_threshold: float = Field(7.0, ge=0.5, le=10, strict=False,
                                   description="Pain alarm when the score stays at or above this...")
    alarm_after_s: float = Field(60.0, ge=0, le=3600, strict=False,
                                 description="... for this long (medium priority).")
    alarm_clear_after_s: float = Field(
        15.0, ge=0, le=3600, strict=False,
        description="The alarm clears after the score stays below threshold - hysteresis this long.")
    alarm_escalate_after_s: float = Field(
        120.0, ge=1, le=86400, strict=False,
        description="An unacknowledged pain alarm escalates to high priority after this.")
    calibration_s: float = Field(120.0, ge=30, le=1800, strict=False,
                                 description="Default length of a calibration at rest.")
    min_reports: int = Field(3, ge=1, le=100,
                             description="Self-reports needed before the personal mapping is fitted.")
    mapping_prior: float = Field(
        3.0, ge=0, le=100, strict=False,
        description="Weight of the identity mapping, in reports, in the personal fit.")


class AlarmOutputConfig(BaseModel):
    model_config = _STRICT

    led_high_pin: int | None = Field(
        None, ge=0, le=27, description="GPIO (BCM) of the high-priority (red) alarm LED; none: off.")
    led_medium_pin: int | None = Field(
        None, ge=0, le=27,
        description="GPIO (BCM) of the medium/low-priority (yellow) alarm LED; none: off.")
    buzzer_pin: int | None = Field(None, ge=0, le=27,
                                   description="GPIO (BCM) of the alarm buzzer; none: silent.")
    buzzer_active_high: bool = Field(True, description="The buzzer sounds with the pin high.")


class ButtonsConfig(BaseModel):
    model_config = _STRICT

    acknowledge_pin: int | None = Field(
        None, ge=0, le=27, description="GPIO (BCM) of the acknowledge button (press: acknowledge "
        "all alarms; hold: start a calibration); none: no button.")
    report_pin: int | None = Field(
        None, ge=0, le=27, description="GPIO (BCM) of the self-report button (N presses: NRS N; "
        "hold: NRS 0); none: no button.")
    stay_pin: int | None = Field(
        None, ge=0, le=27, description="GPIO (BCM) of the stay button (hold: admit a patient under "
        "a generated reference when nobody is admitted, else discharge); none: no button.")
    pull_up: bool = Field(True, description="Buttons connect the pin to ground (internal pull-up).")
    hold_s: float = Field(3.0, ge=0.5, le=30, strict=False, description="Long-press time.")
    report_window_s: float = Field(
        2.0, ge=0.5, le=10, strict=False,
        description="A self-report ends this long after its last press.")
    report_source: Literal["patient", "nurse"] = Field(
        "patient", description="Who the report button speaks for.")

    @model_validator(mode="after")
    def _distinct_pins(self) -> ButtonsConfig:
        if self.acknowledge_pin is not None and self.acknowledge_pin == self.report_pin:
            raise KeyedValueError("report_pin", f"is the same GPIO as buttons.acknowledge_pin "
                                  f"({self.report_pin})")
        if self.stay_pin is not None and self.stay_pin in (self.acknowledge_pin, self.report_pin):
            raise KeyedValueError("stay_pin", f"is the same GPIO as another button ({self.stay_pin})")
        return self


class RecordingConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(
        False, description="Record from start-up (also: the record command, demo --record).")
    dir: Path | None = Field(
        None, strict=False, description="Where the EDF+ files and event sidecars go.",
        json_schema_extra={"default_doc": "<state_dir>/recordings"})
    rotate_min: float = Field(
        10.0, ge=0.5, le=1440, strict=False,
        description="Minutes per file; a power cut loses at most the open file's tail.")

    _paths = field_validator("dir")(absolute_path)


ROUTES = ("iv", "im", "sc", "oral", "sublingual", "intranasal", "rectal", "transdermal",
          "epidural", "other")


def _minutes(default: float, route: str):
    return Field(default, gt=0, le=1440, strict=False,
                 description=f"{route}: minutes from a dose to its reassessment.")


class ReassessConfig(BaseModel):
    """Minutes from an analgesic dose to its reassessment, per route (when the effect is
    expected to be seen: parenteral routes sooner, enteral later)."""

    model_config = _STRICT

    iv: float = _minutes(30.0, "Intravenous")
    im: float = _minutes(60.0, "Intramuscular")
    sc: float = _minutes(60.0, "Subcutaneous")
    oral: float = _minutes(60.0, "By mouth")
    sublingual: float = _minutes(30.0, "Under the tongue")
    intranasal: float = _minutes(30.0, "Nasal spray")
    rectal: float = _minutes(60.0, "Rectal")
    transdermal: float = _minutes(60.0, "Patch")
    epidural: float = _minutes(30.0, "Epidural")
    other: float = _minutes(60.0, "Any other route, and a dose given without a route")

    def minutes(self, route: str | None) -> float:
        return float(getattr(self, route or "other"))


class CareConfig(BaseModel):
    model_config = _STRICT

    retention_days: float = Field(
        30.0, ge=0, le=3650, strict=False,
        description="A discharged stay is kept this long for export, then deleted.")
    reassess_min: ReassessConfig = Field(default_factory=ReassessConfig,
                                         description="Reassessment after analgesia, by route.")


class PainmonConfig(BaseModel):
    model_config = _STRICT

    device_id: str = Field(
        "painmon-demo", pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Name of this device in topics and payloads.",
    )
    hardware: Literal["emulated", "real"] = Field(
        "emulated", description=f"Emulated chips or the real buses; env {HARDWARE_ENV} overrides.",
    )
    state_dir: Path = Field(
        default_factory=default_state_dir, strict=False,
        description="Writable directory for the outbox and recordings.",
        json_schema_extra={"default_doc": "$STATE_DIRECTORY, else ~/.local/state/painmon"},
    )
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT.")
    commands: CommandsConfig = Field(default_factory=CommandsConfig,
                                     description="Commands received over MQTT.")
    processing: ProcessingConfig = Field(default_factory=ProcessingConfig, description="DSP.")
    sensors: SensorsConfig = Field(default_factory=SensorsConfig, description="Sensors.")
    face: FaceConfig = Field(default_factory=FaceConfig, description="Face modality.")
    simulator: SimulatorConfig = Field(default_factory=SimulatorConfig, description="Simulator.")
    pain: PainConfig = Field(default_factory=PainConfig, description="Pain estimate and alarm.")
    alarm: AlarmOutputConfig = Field(default_factory=AlarmOutputConfig,
                                     description="Local alarm output (LEDs, buzzer).")
    buttons: ButtonsConfig = Field(default_factory=ButtonsConfig, description="GPIO buttons.")
    recording: RecordingConfig = Field(default_factory=RecordingConfig,
                                       description="Raw signal and event recording.")
    care: CareConfig = Field(default_factory=CareConfig,
                             description="Stays, observational scales, analgesia follow-up.")

    _paths = field_validator("state_dir")(absolute_path)

    @model_validator(mode="after")
    def _demo_parts_only_when_emulated(self) -> PainmonConfig:
        """A device on real hardware must not score the demo's photograph or simulate."""
        if self.face.camera is None:
            self.face.camera = DEMO_CAMERA if self.hardware == "emulated" else REAL_CAMERA
        if self.hardware != "real":
            return self
        if self.face.enabled and self.face.camera == DEMO_CAMERA:
            raise KeyedValueError("face.camera", f'"{DEMO_CAMERA}" is the demo\'s photograph: with '
                                  'hardware = "real" set a camera ("picamera2", a V4L2 index '
                                  'like "0", a GStreamer pipeline) or face.enabled = false')
        if self.simulator.model_fields_set:
            key = "simulator." + sorted(self.simulator.model_fields_set)[0]
            raise KeyedValueError(key, 'the simulator only feeds the emulated board: remove '
                                  '[simulator] or set hardware = "emulated"')
        return self

    @model_validator(mode="after")
    def _pins_distinct(self) -> PainmonConfig:
        from device.config.wiring import check_all_pins

        check_all_pins(self)
        return self
