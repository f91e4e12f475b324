"""INT8 with ONNX Runtime: static quantization (QDQ, per-channel weights, uint8 activations)
calibrated on the task's training images, and the accuracy of an ONNX file on test images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.onnx.runtime import ort_session

if TYPE_CHECKING:
    import numpy as np


def quantize_int8(fp32: Path, out: Path, calibration: np.ndarray) -> Path:
    """Static QDQ quantization with per-channel weights, calibrated on ``calibration`` inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": calibration[i:i + 16]} for i in range(0, len(calibration), 16)])

        def get_next(self):
            return next(self.batches, None)

    prepared = out.with_name("prepared.onnx")
    try:
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    except Exception:  # pre-processing is an optimisation; quantize the plain file if it fails
        prepared = fp32
    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def onnx_accuracy(path: Path, inputs: np.ndarray, labels: np.ndarray, threads: int) -> float:
    """Top-1 accuracy of the ONNX file at ``path`` on preprocessed ``inputs``."""
    import numpy as np

    session = ort_session(path, threads=threads)
    preds = np.concatenate([session.run(["logits"], {"input": inputs[i:i + 64]})[0].argmax(1)
                            for i in range(0, len(inputs), 64)])
    return float((preds == labels).mean())
