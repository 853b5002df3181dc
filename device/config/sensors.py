"""The ``[sensors]`` sections of the configuration: which chips, on which buses and pins."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from device.config.base import STRICT as _STRICT
from device.config.base import KeyedValueError


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
        description="GPIO (BCM) wired to INT: the FIFO is read on its almost-full interrupt; none: polled.")

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
        description="GPIO (BCM) wired to ALERT/RDY: conversions end on its edge; none: OS bit polled.")
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
    r_ref_ohm: float = Field(100_000.0, ge=1_000, le=100_000_000,
                             description="Reference resistor in series with skin (1 kOhm to "
                             "100 MOhm: skin is 10 kOhm to 10 MOhm).")
    v_excitation_v: float = Field(0.5, ge=0.05, le=5, description="Voltage across the divider.")
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
    gain: float = Field(1100.0, ge=1, le=10_000,
                        description="AD8232 gain, electrodes to ADC input (1 to 10000).")
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
        from device.config.wiring import check_wiring

        check_wiring(self, [name for name, _ in analog])
        # The ADS1115 converts one input at a time, so the channels share its data rate.
        total_hz = sum(s.rate_hz for _, s in analog)
        if self.adc.chip == "ads1115" and total_hz > self.adc.data_rate_sps:
            parts = " + ".join(f"sensors.{name}.rate_hz {s.rate_hz}" for name, s in analog)
            raise KeyedValueError("adc.data_rate_sps", f"{self.adc.data_rate_sps} conversions/s "
                                  f"cannot serve {parts} = {total_hz} samples/s")
        return self
