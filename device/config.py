"""painmon's configuration: one TOML file, validated before anything starts.

Every section forbids unknown keys and every field carries a description; the descriptions
are also the configuration reference (``reference_markdown``). The defaults run the demo:
emulated chips, a broker on localhost. ``load_config`` reports every problem at once, each
naming the file and the dotted key (checks across fields of a section run once its fields
are valid).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

HARDWARE_ENV = "PAINMON_HARDWARE"

# strict: TOML values are already typed, so "yes" is not a boolean and "1883" is not a port.
_STRICT = ConfigDict(extra="forbid", strict=True)


class KeyedValueError(ValueError):
    """A cross-field check failed; ``key`` names the offending field relative to the model."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _default_state_dir() -> Path:
    # systemd's StateDirectory= hands over a colon-separated list; the first entry is ours.
    state_directory = os.environ.get("STATE_DIRECTORY", "")
    if state_directory:
        return Path(state_directory.split(":")[0])
    return Path.home() / ".local" / "state" / "painmon"


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
    senml: bool = Field(False, description="Also publish the numeric values as SenML "
                        "(RFC 8428) on <prefix>/<device_id>/senml.")

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


class LedCurrentConfig(BaseModel):
    model_config = _STRICT

    # LEDx_PA: 0x00..0xFF in 0.2 mA steps, 0 to 51 mA (MAX30102 datasheet, Table 8).
    red: float = Field(7.0, ge=0, le=51, description="Red LED current.")
    ir: float = Field(7.0, ge=0, le=51, description="Infrared LED current.")
    green: float = Field(0.0, ge=0, le=51, description="Green LED current (MAX30101 only).")


class PpgConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(True, description="Read the PPG sensor.")
    chip: Literal["max30102", "max30101"] = Field("max30102", description="PPG chip.")
    i2c_bus: int = Field(1, ge=0, le=255, description="I2C bus number (/dev/i2c-N).")
    address: Literal[0x57] = Field(0x57, description="I2C address (fixed on the MAX3010x).")
    mode: Literal["hr", "spo2", "multi_led"] = Field(
        "spo2", description="LEDs: hr (red), spo2 (red + IR), multi_led (MAX30101 only)."
    )
    sample_rate_hz: Literal[50, 100, 200, 400, 800, 1000, 1600, 3200] = Field(
        100, description="ADC sample rate (SPO2_SR)."
    )
    sample_averaging: Literal[1, 2, 4, 8, 16, 32] = Field(
        1, description="On-chip averaging (SMP_AVE); FIFO rate = sample_rate_hz / this."
    )
    pulse_width_us: Literal[69, 118, 215, 411] = Field(
        411, description="LED pulse width (LED_PW); sets the resolution, 15 to 18 bit."
    )
    adc_range_na: Literal[2048, 4096, 8192, 16384] = Field(
        4096, description="ADC full scale (SPO2_ADC_RGE)."
    )
    led_current_ma: LedCurrentConfig = Field(
        default_factory=LedCurrentConfig, description="LED drive currents."
    )
    int_pin: int | None = Field(
        None, ge=0, le=27,
        description="GPIO (BCM) wired to INT; reserved (checked for conflicts), the FIFO is polled.")

    @model_validator(mode="after")
    def _chip_has_leds(self) -> PpgConfig:
        if self.chip == "max30102" and self.mode == "multi_led":
            raise KeyedValueError("mode", "multi_led needs sensors.ppg.chip = max30101")
        if self.chip == "max30102" and self.led_current_ma.green > 0:
            raise KeyedValueError("led_current_ma.green",
                                  "the max30102 has no green LED (sensors.ppg.chip = max30101 has)")
        return self


class AccelConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(True, description="Read the accelerometer.")
    chip: Literal["mpu6050"] = Field("mpu6050", description="Accelerometer chip.")
    i2c_bus: int = Field(1, ge=0, le=255, description="I2C bus number (/dev/i2c-N).")
    address: Literal[0x68, 0x69] = Field(0x68, description="I2C address (0x69 with AD0 high).")
    range_g: Literal[2, 4, 8, 16] = Field(2, description="Full-scale range (AFS_SEL).")
    sample_rate_hz: int = Field(50, ge=4, le=1000, description="Sample rate (SMPLRT_DIV).")


class AdcConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(True, description="Use the ADC (GSR and ECG need it).")
    chip: Literal["ads1115", "mcp3008"] = Field(
        "ads1115", description="ADC chip: ads1115 (I2C, 16 bit) or mcp3008 (SPI, 10 bit).")
    i2c_bus: int = Field(1, ge=0, le=255, description="I2C bus number (/dev/i2c-N), ads1115.")
    address: Literal[0x48, 0x49, 0x4A, 0x4B] = Field(
        0x48, description="I2C address (ADDR pin), ads1115.")
    data_rate_sps: Literal[8, 16, 32, 64, 128, 250, 475, 860] = Field(
        860, description="Conversion rate (DR), shared by all analog channels (ads1115)."
    )
    alert_pin: int | None = Field(
        None, ge=0, le=27,
        description="GPIO (BCM) wired to ALERT/RDY; reserved (checked for conflicts), OS bit polled.")
    spi_bus: int = Field(0, ge=0, le=6, description="SPI bus (/dev/spidevB.D), mcp3008.")
    spi_device: int = Field(0, ge=0, le=3, description="SPI chip select (CE0 = 0), mcp3008.")
    v_ref_v: float = Field(3.3, ge=0.25, le=5.5, description="VREF pin voltage (mcp3008).")


_PGA_V = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)


def _check_pga(value: float) -> float:
    if value not in _PGA_V:
        raise ValueError(f"must be one of {', '.join(map(str, _PGA_V))} (ADS1115 PGA), got {value}")
    return value


PgaVolts = Annotated[float, AfterValidator(_check_pga)]
_PGA_DOC = {"one_of": _PGA_V}


class GsrConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(True, description="Read skin conductance.")
    adc_channel: int = Field(
        0, ge=0, le=7, description="ADC input: AIN0-3 (ads1115) or CH0-7 (mcp3008), vs GND.")
    rate_hz: int = Field(8, ge=1, le=50, description="Sample rate.")
    pga_v: PgaVolts = Field(0.512, description="ADC full scale (PGA).", json_schema_extra=_PGA_DOC)
    r_ref_ohm: float = Field(100_000.0, gt=0, description="Reference resistor in series with skin.")
    v_excitation_v: float = Field(0.5, gt=0, le=5, description="Voltage across the divider.")
    offset_v: float = Field(0.0, ge=-5, le=5, description="Reading with the electrodes open.")


class EcgConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(True, description="Read the ECG front-end.")
    source: Literal["ad8232", "ads1292r"] = Field(
        "ad8232", description="ad8232 (analog, through the ADC) or ads1292r (SPI front-end).")
    adc_channel: int = Field(
        1, ge=0, le=7, description="ADC input of the AD8232 output (AIN0-3 or CH0-7).")
    rate_hz: int = Field(250, ge=50, le=500, description="Sample rate (ad8232 through the ADC).")
    pga_v: PgaVolts = Field(4.096, description="ADC full scale (PGA).", json_schema_extra=_PGA_DOC)
    gain: float = Field(1100.0, gt=0, description="AD8232 gain, electrodes to ADC input.")
    v_ref_v: float = Field(1.65, ge=0, le=5, description="AD8232 output for 0 mV at the skin.")
    lo_plus_pin: int | None = Field(
        None, ge=0, le=27, description="GPIO (BCM) wired to the AD8232 LO+ (lead-off) output.")
    lo_minus_pin: int | None = Field(
        None, ge=0, le=27, description="GPIO (BCM) wired to the AD8232 LO- output.")
    spi_bus: int = Field(0, ge=0, le=6, description="SPI bus of the ads1292r.")
    spi_device: int = Field(1, ge=0, le=3, description="SPI chip select of the ads1292r (CE1 = 1).")
    data_rate_sps: Literal[250, 500] = Field(250, description="ads1292r data rate (CONFIG1.DR).")
    pga_gain: Literal[1, 2, 3, 4, 6, 8, 12] = Field(6, description="ads1292r ECG channel PGA gain.")
    respiration: bool = Field(True, description="ads1292r respiration channel (CH1) on.")
    drdy_pin: int | None = Field(
        None, ge=0, le=27, description="GPIO (BCM) wired to the ads1292r DRDY; none: paced reads.")


class SensorsConfig(BaseModel):
    model_config = _STRICT

    ppg: PpgConfig = Field(default_factory=PpgConfig, description="PPG.")
    accel: AccelConfig = Field(default_factory=AccelConfig, description="Accelerometer.")
    adc: AdcConfig = Field(default_factory=AdcConfig, description="ADC.")
    gsr: GsrConfig = Field(default_factory=GsrConfig, description="Skin conductance via the ADC.")
    ecg: EcgConfig = Field(default_factory=EcgConfig, description="ECG via the ADC.")

    @model_validator(mode="after")
    def _analog_fits_adc(self) -> SensorsConfig:
        analog = [(name, s) for name, s in (("gsr", self.gsr), ("ecg", self.ecg))
                  if s.enabled and (name == "gsr" or self.ecg.source == "ad8232")]
        if analog and not self.adc.enabled:
            names = " and ".join(f"sensors.{name}" for name, _ in analog)
            raise KeyedValueError("adc.enabled", f"{names} read through the ADC; enable it")
        if len(analog) == 2 and self.gsr.adc_channel == self.ecg.adc_channel:
            raise KeyedValueError("gsr.adc_channel", "sensors.gsr.adc_channel and "
                                  f"sensors.ecg.adc_channel are both {self.gsr.adc_channel}")
        from device.wiring import check_wiring

        check_wiring(self, [name for name, _ in analog])
        # The ADS1115 converts one input at a time, so the channels share its data rate.
        total_hz = sum(s.rate_hz for _, s in analog)
        if self.adc.chip == "ads1115" and total_hz > self.adc.data_rate_sps:
            parts = " + ".join(f"sensors.{name}.rate_hz {s.rate_hz}" for name, s in analog)
            raise KeyedValueError("adc.data_rate_sps", f"{self.adc.data_rate_sps} conversions/s "
                                  f"cannot serve {parts} = {total_hz} samples/s")
        return self


class SimulatorConfig(BaseModel):
    model_config = _STRICT

    seed: int = Field(1, ge=0, description="Random seed of the physiology simulator.")
    scenario: Literal["demo", "rest"] = Field(
        "demo", description="demo (rest, then pain episodes) or rest."
    )


class FaceConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(True, description="Run the face modality (camera, landmarks, AUs).")
    camera: str = Field(
        "photo", description='"photo" (the demo photo), a V4L2 index like "0", "picamera2", '
        "a GStreamer pipeline, a folder of images or a video file.",
    )
    fps: float = Field(10.0, gt=0, le=30, strict=False, description="Frames analysed per second.")
    tracking: bool = Field(
        True, description="Track the face from the last landmarks; detect only when lost.")
    num_threads: int = Field(1, ge=1, le=4, description="TFLite threads per model.")
    model_dir: Path | None = Field(
        None, strict=False, description="Where the fetched face models are.",
        json_schema_extra={"default_doc": "$PAINMON_MODEL_DIR, else ~/.cache/painmon/models"},
    )


class PainConfig(BaseModel):
    model_config = _STRICT

    face_weight: float = Field(1.0, ge=0, le=10, strict=False,
                               description="Fusion prior of the face at full confidence.")
    physio_weight: float = Field(1.0, ge=0, le=10, strict=False,
                                 description="Fusion prior of the physiology at full confidence.")
    motion_high_g: float = Field(
        0.15, gt=0, le=2, strict=False,
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
        120.0, gt=0, le=86400, strict=False,
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
        None, ge=0, le=53, description="GPIO (BCM) of the high-priority (red) alarm LED; none: off.")
    led_medium_pin: int | None = Field(
        None, ge=0, le=53,
        description="GPIO (BCM) of the medium/low-priority (yellow) alarm LED; none: off.")
    buzzer_pin: int | None = Field(None, ge=0, le=53,
                                   description="GPIO (BCM) of the alarm buzzer; none: silent.")
    buzzer_active_high: bool = Field(True, description="The buzzer sounds with the pin high.")


class ButtonsConfig(BaseModel):
    model_config = _STRICT

    acknowledge_pin: int | None = Field(
        None, ge=0, le=53, description="GPIO (BCM) of the acknowledge button (press: acknowledge "
        "all alarms; hold: start a calibration); none: no button.")
    report_pin: int | None = Field(
        None, ge=0, le=53, description="GPIO (BCM) of the self-report button (N presses: NRS N; "
        "hold: NRS 0); none: no button.")
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
        return self


class RecordingConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(
        False, description="Record from start-up (also: the record command, demo --record).")
    dir: Path | None = Field(
        None, strict=False, description="Where the EDF+ files and event sidecars go.",
        json_schema_extra={"default_doc": "<state_dir>/recordings"})
    rotate_min: float = Field(
        10.0, gt=0, le=1440, strict=False,
        description="Minutes per file; a power cut loses at most the open file's tail.")


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
        default_factory=_default_state_dir, strict=False,
        description="Writable directory for the outbox and recordings.",
        json_schema_extra={"default_doc": "$STATE_DIRECTORY, else ~/.local/state/painmon"},
    )
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT.")
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

    @field_validator("state_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"painmon-{self.device_id}"


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    key: str  # dotted, e.g. "sensors.ppg.sample_rate_hz"; "" for file-level problems
    message: str

    def __str__(self) -> str:
        key = f" {self.key}:" if self.key else ""
        return f"{self.file}:{key} {self.message}"


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` lists every reason."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__(problems)
        self.problems = list(problems)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def _section(loc: tuple[str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = PainmonConfig
    for part in loc:
        field = model.model_fields.get(part)
        if field is None or not _is_section(field.annotation):
            return None
        model = field.annotation
    return model


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _problem(file: str, err: dict, env_hardware: bool) -> ConfigProblem:
    loc = tuple(str(p) for p in err["loc"])
    error = (err.get("ctx") or {}).get("error")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
        section = _section(loc[:-1])
        close = difflib.get_close_matches(loc[-1], list(section.model_fields) if section else [], 1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    elif isinstance(error, KeyedValueError):
        loc += tuple(error.key.split("."))
        message = str(error)
    elif isinstance(error, ValueError):
        message = str(error)
    elif err["type"] == "model_type":
        message = "must be a table"
    elif loc[-1] == "address" and err["type"] == "literal_error" and type(err["input"]) is int:
        allowed = _section(loc[:-1]).model_fields["address"].annotation.__args__
        message = f"must be one of {', '.join(map(hex, allowed))}, got {hex(err['input'])}"
    else:
        message = err["msg"][0].lower() + err["msg"][1:]
        if isinstance(err.get("input"), (str, int, float, bool)):
            message += f", got {err['input']!r}"
    if loc == ("hardware",) and env_hardware:
        file = f"env {HARDWARE_ENV}"
    return ConfigProblem(file, ".".join(loc), message)


def validate_config(data: dict[str, Any], source: str = "<config>") -> PainmonConfig:
    """Validate a parsed TOML document, after applying the environment's overrides."""
    env_hardware = bool(os.environ.get(HARDWARE_ENV))
    if env_hardware:
        data = {**data, "hardware": os.environ[HARDWARE_ENV]}
    try:
        return PainmonConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(source, e, env_hardware) for e in exc.errors()]) from None


# Python 3.11's TOMLDecodeError carries the position only inside its message.
_TOML_POSITION = re.compile(r"^(?P<what>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def load_config(path: str | os.PathLike) -> PainmonConfig:
    """Read and validate a TOML configuration file; raises ``ConfigError``."""
    source = str(path)

    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigProblem(source, "", message)])

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POSITION.match(str(exc))
        where = f"line {m['line']}, column {m['col']}: " if m else ""
        raise fail(f"{where}invalid TOML: {m['what'] if m else exc}") from None
    return validate_config(data, source)


def default_config() -> PainmonConfig:
    """The configuration the demo runs with (environment overrides applied)."""
    return validate_config({}, "<defaults>")


def reference_markdown() -> str:
    """The configuration reference (Markdown), generated from the models' descriptions."""
    from device.config_reference import reference_markdown as generate

    return generate(PainmonConfig)
