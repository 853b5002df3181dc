"""The design card's sensor board, emulated at register level.

One I2C bus carries a MAX30102 (or MAX30101) at 0x57, an MPU-6050 at 0x68 and an ADS1115 at
0x48 whose inputs are a GSR divider (AIN0) and an AD8232 ECG output (AIN1). Every chip is fed
by one `PhysiologySimulator`, so PPG, ECG, EDA and motion are coherent, and the real drivers
read it through the same smbus2 calls they use on a Raspberry Pi.
"""

from __future__ import annotations

import errno
import os

import numpy as np

from sensors.clock import Clock
from sensors.emulated.ads1115 import EmulatedAds1115
from sensors.emulated.i2c import EmulatedI2CBus
from sensors.emulated.max3010x import EmulatedMax30101, EmulatedMax30102
from sensors.emulated.mpu6050 import EmulatedMpu6050
from sensors.emulated.physiology import PhysiologySimulator
from sensors.frontends import Ad8232, GsrDivider


class EmulatedBoard:
    def __init__(
        self,
        clock: Clock,
        simulator: PhysiologySimulator,
        *,
        bus_number: int = 1,
        ppg_chip: str = "max30102",
        ppg_address: int = 0x57,
        accel_address: int = 0x68,
        adc_address: int = 0x48,
        gsr: GsrDivider | None = None,
        gsr_channel: int = 0,
        ecg: Ad8232 | None = None,
        ecg_channel: int = 1,
    ) -> None:
        self.clock = clock
        self.simulator = simulator
        self.bus_number = bus_number
        self.gsr = gsr or GsrDivider()
        self.ecg = ecg or Ad8232()
        self.gsr_channel = gsr_channel
        self.ecg_channel = ecg_channel
        self.bus = EmulatedI2CBus(bus_number)
        ppg_cls = EmulatedMax30101 if ppg_chip == "max30101" else EmulatedMax30102
        self.addresses = {"ppg": ppg_address, "accel": accel_address, "adc": adc_address}
        self.chips = {
            "ppg": ppg_cls(clock, simulator.ppg),
            "accel": EmulatedMpu6050(clock, simulator.accel_g),
            "adc": EmulatedAds1115(clock, self.analog_input_v),
        }
        for name, chip in self.chips.items():
            self.bus.attach(self.addresses[name], chip)

    def analog_input_v(self, ain: int, t_s: np.ndarray) -> np.ndarray:
        """The voltage on ADS1115 input ``ain`` at times ``t_s``: what the front-ends output."""
        t_s = np.asarray(t_s, dtype=float)
        if ain == self.gsr_channel:
            return self.gsr.volts_for(self.simulator.eda_us(t_s))
        if ain == self.ecg_channel:
            return self.ecg.volts_for(self.simulator.ecg_mv(t_s))
        return np.zeros_like(t_s)

    def i2c(self, bus_number: int) -> EmulatedI2CBus:
        """The bus a driver would get from ``smbus2.SMBus(bus_number)``."""
        if bus_number != self.bus_number:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), f"/dev/i2c-{bus_number}")
        return self.bus

    # -- cables get pulled -------------------------------------------------------------------
    def unplug(self, name: str) -> None:
        self.bus.detach(self.addresses[name])

    def plug(self, name: str) -> None:
        if self.addresses[name] not in self.bus.chips:
            self.bus.attach(self.addresses[name], self.chips[name])
