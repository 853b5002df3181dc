"""The physio modality on the device: the physio LSTM on the processing loop's hop, fed with
the blocks the hop drained. It is optional: without its model or runtime it is reported
missing with the reason, and the rest of the app runs on."""

from __future__ import annotations

import logging

from models.modality import ModalityEstimate
from sensors.types import SampleBlock

from device.acquisition.sensor import describe_error

log = logging.getLogger(__name__)

#: Preferred PPG channel for the physio features (green is the most motion-robust on skin).
PPG_PREFERENCE = ("ppg_green", "ppg_ir", "ppg_red")
ACCEL_AXES = ("acc_x", "acc_y", "acc_z")


def open_physio() -> tuple[PhysioStage | None, str | None]:
    """The physio stage, or None and the reason it cannot run here."""
    try:
        return PhysioStage(), None
    except Exception as exc:  # noqa: BLE001 - no model, no runtime: run without the modality
        log.warning("physio modality unavailable: %s", describe_error(exc))
        return None, describe_error(exc)


class PhysioStage:
    """The physio LSTM on the hop, fed with the blocks the hop drained: the preferred PPG
    channel, the EDA, the accelerometer's three axes (the PPG's motion reference, as in the
    vitals) and, on a device with an ECG fitted, the ECG."""

    def __init__(self, *, ppg_polarity: int = -1) -> None:
        from models.physio import PhysioEstimator

        # Raw reflectance counts fall with each pulse: the estimator wants them inverted.
        self.estimator = PhysioEstimator(ppg_polarity=ppg_polarity)
        self._ppg_channel: str | None = None

    def push(self, blocks: list[SampleBlock]) -> None:
        present = {b.channel for b in blocks}
        for name in PPG_PREFERENCE:
            if name in present and (self._ppg_channel in (None, name)
                                    or self._ppg_channel not in present):
                self._ppg_channel = name
                break
        axes: dict[int, dict[str, SampleBlock]] = {}
        for block in blocks:
            if block.channel == self._ppg_channel:
                self.estimator.push(ppg=block)
            elif block.channel == "eda":
                self.estimator.push(eda=block)
            elif block.channel == "ecg":  # when fitted: heart rate and RMSSD from its R peaks
                self.estimator.push(ecg=block)
            elif block.channel in ACCEL_AXES:
                group = axes.setdefault(block.t0_ns, {})
                group[block.channel] = block
                if len(group) == 3:
                    self.estimator.push(accel=[group[a] for a in ACCEL_AXES])

    def process(self) -> ModalityEstimate:
        return self.estimator.process()
