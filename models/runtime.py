"""The one place that loads a .tflite model.

LiteRT (``ai-edge-litert``) is the runtime; ``tflite-runtime`` (its predecessor, still what
some Raspberry Pi OS and Jetson images carry) is the fallback. A fallback is a logged warning,
not a crash. TensorFlow is never needed on the device.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class RuntimeMissing(ImportError):
    """Neither ai-edge-litert nor tflite-runtime is installed."""


def _interpreter_class(prefer: str | None = None):
    order = ["litert", "tflite_runtime"]
    if prefer == "tflite_runtime":
        order.reverse()
    errors = []
    for name in order:
        try:
            if name == "litert":
                from ai_edge_litert.interpreter import Interpreter
            else:
                from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if name != order[0]:
            log.warning("TFLite runtime %s not available, using %s", order[0], name)
        return name, Interpreter
    raise RuntimeMissing(
        "no TFLite runtime: install ai-edge-litert (or tflite-runtime); " + "; ".join(errors)
    )


class TFLiteModel:
    """A loaded model with one or more inputs and outputs, run on one thread.

    ``run(*inputs)`` quantizes float inputs for int8/uint8 input tensors and dequantizes
    quantized outputs, so callers always work in float. Every call starts from a clean state:
    TFLite keeps a recurrent layer's state (a fused ``UNIDIRECTIONAL_SEQUENCE_LSTM``'s
    hidden and cell state are variable tensors) from one ``invoke`` to the next, so without
    the reset a sequence would be scored from where the previous one ended, unlike in training.
    """

    def __init__(self, path: str | Path, num_threads: int = 1, prefer: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model file not found: {self.path}")
        self.runtime, interpreter_cls = _interpreter_class(prefer)
        self.interpreter = interpreter_cls(model_path=str(self.path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()

    def input_shape(self, index: int = 0) -> tuple[int, ...]:
        return tuple(int(d) for d in self.inputs[index]["shape"])

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"{self.path.name}: expects {len(self.inputs)} input(s), got {len(inputs)}")
        for detail, value in zip(self.inputs, inputs):
            self.interpreter.set_tensor(detail["index"], _to_tensor(value, detail))
        self.interpreter.reset_all_variables()
        self.interpreter.invoke()
        return [_from_tensor(self.interpreter.get_tensor(d["index"]), d) for d in self.outputs]


def _to_tensor(value: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    value = np.asarray(value)
    if tuple(value.shape) != tuple(detail["shape"]):
        value = value.reshape(detail["shape"])
    if dtype in (np.int8, np.uint8) and value.dtype not in (np.int8, np.uint8):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        value = np.clip(np.round(value / scale + zero), info.min, info.max)
    return value.astype(dtype, copy=False)


def _from_tensor(value: np.ndarray, detail: dict) -> np.ndarray:
    if value.dtype in (np.int8, np.uint8):
        scale, zero = detail["quantization"]
        if scale:
            return (value.astype(np.float32) - zero) * scale
    return value.copy()
