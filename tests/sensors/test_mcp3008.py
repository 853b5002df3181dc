"""The MCP3008 driver against the bit-level emulator, and the emulated spidev bus itself."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from sensors.clock import SteppedClock
from sensors.emulated.mcp3008 import EmulatedMcp3008
from sensors.emulated.spi import SPIDEV_BUFSIZ, EmulatedSpiDev, delay_one_bit
from sensors.mcp3008 import CHANNELS, Mcp3008, command, decode, max_speed_hz_for

V_REF = 3.3
LSB_V = V_REF / 1024

#: A different level on each input, none on a code boundary by accident.
LEVELS_V = np.array([0.05, 0.41, 0.87, 1.2345, 1.65, 2.2, 2.9, 3.25])


def levels(ch, t_s):
    return np.full(np.shape(t_s), LEVELS_V[ch])


def wave(ch, t_s):
    """A 2 Hz sine around mid-scale with a per-channel phase, so sampling time matters."""
    return 1.65 + 1.2 * np.sin(2 * np.pi * 2.0 * np.asarray(t_s) + ch)


class RecordingSpiDev(EmulatedSpiDev):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[list[int]] = []
        self.received: list[list[int]] = []

    def xfer2(self, data, *args):
        rx = super().xfer2(data, *args)
        self.sent.append(list(data))
        self.received.append(rx)
        return rx


def rig(source=levels, *, chip_kw=None, spi_kw=None, **driver_kw):
    clock = SteppedClock(start_ns=3_000_000_000)
    chip = EmulatedMcp3008(clock, source, **(chip_kw or {}))
    spi = RecordingSpiDev(chip, **(spi_kw or {}))
    return clock, chip, spi, Mcp3008(spi, clock, **driver_kw)


# -- protocol ------------------------------------------------------------------------------------
def test_open_sets_mode_and_speed_and_checks_every_channel():
    _, chip, spi, adc = rig()
    adc.open()
    assert spi.mode == 0 and spi.max_speed_hz == 1_000_000
    assert [ch for ch, diff in chip.log] == list(range(CHANNELS))
    assert spi.garbled == 0


@pytest.mark.parametrize("channel", range(CHANNELS))
def test_framing_is_start_bit_sgl_and_channel_then_ten_bits(channel):
    _, chip, spi, adc = rig()
    adc.open()
    code = adc.read_raw(channel)
    assert spi.sent[-1] == [0x01, 0x80 | (channel << 4), 0x00]
    rx = spi.received[-1]
    assert (rx[1] >> 2) & 1 == 0  # the null bit
    assert ((rx[1] & 0x03) << 8) | rx[2] == code
    assert chip.log[-1] == (channel, False)


def test_values_within_one_lsb_on_all_channels():
    _, _, _, adc = rig()
    adc.open()
    volts = np.array([adc.read_voltage(ch) for ch in range(CHANNELS)])
    assert np.all(np.abs(volts - LEVELS_V) <= LSB_V)
    assert [adc.read_raw(ch) for ch in range(CHANNELS)] == list(np.rint(LEVELS_V / V_REF * 1024).astype(int))


def test_input_is_sampled_at_the_transfer_time():
    clock, _, _, adc = rig(wave)
    adc.open()
    for _ in range(50):
        clock.advance(0.0137)
        t_s = clock.now_ns() / 1e9
        for ch in (0, 5):
            assert abs(adc.read_voltage(ch) - wave(ch, t_s)) <= LSB_V


def test_pga_argument_is_accepted_and_ignored():
    _, _, _, adc = rig()
    adc.open()
    assert adc.read_voltage(3, 0.512) == adc.read_voltage(3) == adc.read_voltage(3, pga_v=6.144)


def test_inputs_outside_zero_to_vref_saturate():
    _, _, _, adc = rig(lambda ch, t: np.full(np.shape(t), [-0.4, 3.6, 3.3, 0.0, 1, 1, 1, 1][ch]))
    adc.open()
    assert [adc.read_raw(ch) for ch in range(4)] == [0, 1023, 1023, 0]


def test_pseudo_differential_pairs():
    _, chip, spi, adc = rig()
    adc.open()
    # Pair code 2 is CH2 (+) against CH3 (-), code 3 the reverse: IN- above IN+ reads 0.
    assert spi.xfer2(command(2, differential=True))[1] >> 2 & 1 == 0
    code = adc.read_raw(2, differential=True)
    assert code == 0  # CH2 (0.87 V) is below CH3 (1.2345 V)
    assert adc.read_raw(3, differential=True) == round((LEVELS_V[3] - LEVELS_V[2]) / V_REF * 1024)
    assert chip.log[-1] == (3, True)


def test_lsb_first_repeat_and_zeros_after_the_result():
    _, _, spi, adc = rig()
    adc.open()
    rx = spi.xfer2(command(6) + [0, 0, 0])
    null, code = decode(rx)
    bits = "".join(f"{b:08b}" for b in rx)
    assert null == 0
    assert bits[24:33] == f"{code:010b}"[::-1][1:]  # B1..B9
    assert set(bits[33:]) == {"0"}


def test_high_impedance_bits_read_as_the_bus_idle_level():
    _, _, spi, adc = rig(spi_kw={"miso_idle": 0xFF})
    adc.open()
    rx = spi.xfer2(command(4))
    assert rx[0] == 0xFF and rx[1] >> 3 == 0b11111  # DOUT undriven until the null bit
    assert decode(rx) == (0, round(LEVELS_V[4] / V_REF * 1024))


def test_channel_out_of_range_is_refused():
    _, _, _, adc = rig()
    adc.open()
    with pytest.raises(ValueError, match="channel must be 0..7"):
        adc.read_raw(8)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_speed_hz"):
        rig(max_speed_hz=4_000_000)
    with pytest.raises(ValueError, match="v_ref_v"):
        rig(v_ref_v=6.0)
    _, _, _, adc = rig()
    with pytest.raises(RuntimeError, match="not open"):
        adc.read_raw(0)


# -- absent or misconfigured chip ----------------------------------------------------------------
def test_unplugged_with_pull_up_fails_the_null_bit_check():
    _, _, spi, adc = rig(spi_kw={"miso_idle": 0xFF})
    spi.detach()
    with pytest.raises(OSError, match="null bit 1") as info:
        adc.open()
    assert info.value.errno == errno.ENODEV


def test_unplugged_with_pull_down_reads_all_zero_and_is_refused():
    _, _, spi, adc = rig()
    spi.detach()
    with pytest.raises(OSError, match="all 8 channels read exactly 0") as info:
        adc.open()
    assert info.value.errno == errno.ENODEV


def test_all_zero_can_be_allowed_for_grounded_inputs():
    _, _, _, adc = rig(lambda ch, t: np.zeros(np.shape(t)), allow_all_zero=True)
    adc.open()
    assert adc.read_raw(0) == 0


def test_unplugged_after_open_raises_on_read():
    _, _, spi, adc = rig(spi_kw={"miso_idle": 0xFF})
    adc.open()
    spi.detach()
    with pytest.raises(OSError, match="null bit") as info:
        adc.read_raw(2)
    assert info.value.errno == errno.EIO
    spi.attach(EmulatedMcp3008(adc.clock, levels))
    assert adc.read_raw(2) == round(LEVELS_V[2] / V_REF * 1024)


def test_wrong_spi_mode_gives_garbage_that_open_catches():
    class Mode1Chip(EmulatedMcp3008):
        spi_modes = (1,)  # as if the board needed another mode

    clock = SteppedClock()
    spi = EmulatedSpiDev(Mode1Chip(clock, levels))
    with pytest.raises(OSError) as info:
        Mcp3008(spi, clock).open()
    assert info.value.errno == errno.ENODEV
    assert spi.garbled > 0


def test_clock_too_fast_for_vdd_is_caught_and_fine_at_5v():
    assert max_speed_hz_for(2.7) == 1_350_000 and max_speed_hz_for(5.0) == 3_600_000
    _, _, spi, adc = rig(max_speed_hz=3_000_000)  # VDD 3.3 V: about 1.94 MHz at most
    with pytest.raises(OSError):
        adc.open()
    assert spi.garbled > 0
    _, _, spi, adc = rig(max_speed_hz=3_000_000, chip_kw={"vdd_v": 5.0})
    adc.open()
    assert spi.garbled == 0


def test_usable_by_the_ads1115_channel_scanner():
    ads1115 = pytest.importorskip("sensors.ads1115")
    clock, _, _, adc = rig(wave)
    adc.open()
    channel = ads1115.AnalogChannel("ecg_v", 1, 100.0, 4.096, lambda v: v, "V")
    sampler = ads1115.AnalogSampler(adc, [channel], clock, block_s=0.1)
    blocks = sampler.poll()  # polled on time: each conversion happens at its stamp
    for _ in range(30):
        clock.advance(0.01)
        blocks += sampler.poll()
    assert sum(len(b) for b in blocks) >= 25
    for b in blocks:
        assert np.all(np.abs(b.samples - wave(1, b.times_ns() / 1e9)) <= LSB_V)


# -- the emulated bus ----------------------------------------------------------------------------
def test_closed_device_gives_ebadf_and_reopens():
    _, _, spi, adc = rig()
    adc.open()
    spi.close()
    with pytest.raises(OSError) as info:
        adc.read_raw(0)
    assert info.value.errno == errno.EBADF
    spi.open(0, 0)
    assert adc.read_raw(0) == round(LEVELS_V[0] / V_REF * 1024)
    with pytest.raises(FileNotFoundError, match="spidev0.1"):
        spi.open(0, 1)


def test_spidev_argument_checks():
    spi = EmulatedSpiDev()
    with pytest.raises(TypeError):
        spi.mode = 4
    with pytest.raises(OverflowError):
        spi.xfer2([0] * (SPIDEV_BUFSIZ + 1))
    with pytest.raises(TypeError):
        spi.xfer2([256])
    assert spi.readbytes(3) == [0, 0, 0]  # nothing attached, MISO pulled down
    assert EmulatedSpiDev(miso_idle=0xFF).readbytes(2) == [0xFF, 0xFF]


def test_delay_one_bit():
    assert delay_one_bit([0b1000_0001, 0xFF], 0) == [0b0100_0000, 0b1111_1111]
    assert delay_one_bit([0x00], 1) == [0x80]
