"""INT8 with ONNX Runtime: static quantization (QDQ, per-channel int8 weights, uint8 activations)
calibrated on the task's training images, and what it actually quantised.

The op types are passed to ``quantize_static`` explicitly (:data:`QUANT_OPS`) rather than left to
ORT's default (every op it knows, SE-gate ``Mul``/``Sigmoid`` included) or to optimum's (MatMul
and Add only, which leaves a CNN's convolutions in float and makes it slower). After quantizing,
:func:`quantised_ops` reads the graph back and counts, per op type, the nodes that really run on
quantised tensors, so a report says "Conv 21/21" from the file, not from the request.
"""

from __future__ import annotations

import collections
import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.onnx.runtime import ort_session

if TYPE_CHECKING:
    import numpy as np

QUANT_OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool",
             "Reshape", "Flatten", "Concat")
"""Op types quantised: the compute (Conv, Gemm, MatMul), residual Adds (a float Add between int8
convolutions costs a dequantize/quantize pair each way), activations ORT folds into the preceding
op (Relu, Clip) and data movement that stays int8 (pools, reshapes, concat). Left in float on
purpose: ``Mul``/``Sigmoid``/``HardSigmoid`` (squeeze-excitation gates and hard-swish, where 8 bits
lose accuracy, see MobileNetV3) and reductions ORT has no int8 kernel for (``ReduceMean``)."""
COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
CALIBRATION_IMAGES = 512
"""Training images (seeded sample, never validation or test) the activation ranges are calibrated on."""
CALIBRATION_BATCH = 32


@dataclass(frozen=True)
class OpCount:
    """Nodes of one op type in the float graph, and how many of them run quantised in the INT8 file."""

    op_type: str
    quantised: int
    total: int

    def text(self) -> str:
        return f"{self.op_type} {self.quantised}/{self.total}"


@dataclass(frozen=True)
class Quantized:
    """An INT8 file and how it was made: op types quantised (read back from the graph), whether the
    weights are per-channel, calibration images, and whether ORT's pre-processing ran."""

    path: Path
    ops: tuple[OpCount, ...]
    per_channel: bool
    calibration_images: int
    preprocess_error: str | None = None  # why quant_pre_process failed (the plain file was quantised)


def _preprocess(fp32: Path, out: Path, warn: Callable[[str], None]) -> tuple[Path, str | None]:
    """ORT's ``quant_pre_process``: constant folding and fusions at ORT's basic level (Conv+BatchNorm,
    Conv+Add, ...) and ONNX shape inference, so more tensors have the shapes quantization needs.
    Symbolic shape inference (for transformer ops) is skipped. When it fails the plain file is
    quantised instead, and the caller is told: fewer ops may end up quantised."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
        return out, None
    except Exception as exc:  # ORT's optimiser and ONNX shape inference raise many types
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}"
        warn(f"INT8: ONNX Runtime's quantization pre-processing failed ({reason}); quantising the file as "
             "exported, which may leave more ops in float")
        return fp32, reason


def quantize_int8(fp32: Path, out: Path, calibration: np.ndarray, *, op_types: tuple[str, ...] = QUANT_OPS,
                  warn: Callable[[str], None] = lambda _msg: None) -> Quantized:
    """Static QDQ quantization of ``fp32`` into ``out``: per-channel int8 weights, uint8 activations
    with ranges from ``calibration`` (model inputs, MinMax); ``warn`` hears of a failed pre-process."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": calibration[i:i + CALIBRATION_BATCH]}
                                 for i in range(0, len(calibration), CALIBRATION_BATCH)])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.batches, None)

    source, error = _preprocess(fp32, out.with_name(out.stem + ".prepared.onnx"), warn)
    try:
        quantize_static(str(source), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(op_types))
        ops, per_channel = quantised_ops(source, out)  # counted against the graph that was quantised
    except Exception as exc:
        # ORT's quantizer writes copies of the model beside ``out`` (pre-processed, shape-inferred);
        # on a full disk a copy is cut short silently and reading it back fails as a corrupt protobuf
        if _short_of_space(out.parent, 3 * fp32.stat().st_size):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out)) from exc
        raise
    finally:
        if source != fp32:
            source.unlink(missing_ok=True)
    return Quantized(out, ops, per_channel, len(calibration), error)


def _short_of_space(folder: Path, need: int) -> bool:
    """Whether ``folder``'s disk has less than ``need`` bytes free (False when that cannot be told)."""
    try:
        return shutil.disk_usage(folder).free < need
    except OSError:
        return False


def _producers(graph: Any) -> dict[str, Any]:
    return {name: node for node in graph.node for name in node.output}


def _consumers(graph: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            out[name].append(node)
    return out


def _runs_quantised(node: Any, producers: dict[str, Any], consumers: dict[str, list[Any]],
                    inits: dict[str, Any]) -> bool:
    """A node runs on int8 when ORT can fuse it into an integer kernel: every tensor input comes from
    DequantizeLinear (shape constants aside), and either its weight is int8 or its outputs go only
    to QuantizeLinear. A Mul of a dequantized tensor and a float gate is not quantised."""
    import onnx

    fed = []
    for name in (i for i in node.input if i):
        producer = producers.get(name)
        if producer is not None and producer.op_type == "DequantizeLinear":
            fed.append(producer)
        elif producer is not None and producer.op_type == "Constant":
            continue
        elif name in inits and inits[name].data_type != onnx.TensorProto.FLOAT:
            continue  # shapes, axes
        else:
            return False  # a float tensor reaches it unquantised
    if not fed:
        return False
    int8_weight = any(p.input[0] in inits and inits[p.input[0]].data_type == onnx.TensorProto.INT8 for p in fed)
    outputs = [c for o in node.output for c in consumers.get(o, [])]
    return int8_weight or (bool(outputs) and all(c.op_type == "QuantizeLinear" for c in outputs))


def quantised_ops(fp32: Path, int8: Path) -> tuple[tuple[OpCount, ...], bool]:
    """(per op type of the float graph ``fp32`` that was quantised: nodes quantised in ``int8`` / nodes
    in ``fp32``; whether every
    quantised weight has per-channel scales). Ops ORT folds away (Relu after Conv) count as quantised
    when they are gone from the INT8 graph."""
    import onnx

    from harness.onnx.runtime import load_proto

    before = collections.Counter(n.op_type for n in load_proto(fp32).graph.node)
    graph = onnx.load(str(int8)).graph
    producers, consumers = _producers(graph), _consumers(graph)
    inits = {t.name: t for t in graph.initializer}
    after = collections.Counter(n.op_type for n in graph.node)
    quantised = collections.Counter(n.op_type for n in graph.node
                                    if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
                                    and _runs_quantised(n, producers, consumers, inits))
    counts = []
    for op, total in sorted(before.items()):
        folded = max(0, total - after.get(op, 0)) if op in ("Relu", "Clip") else 0
        counts.append(OpCount(op, min(total, quantised.get(op, 0) + folded), total))
    weight_scales = [inits[n.input[1]] for n in graph.node if n.op_type == "DequantizeLinear"
                     and n.input[0] in inits and inits[n.input[0]].data_type == onnx.TensorProto.INT8
                     and n.input[1] in inits]
    per_channel = bool(weight_scales) and all(len(s.dims) == 1 and s.dims[0] > 1 for s in weight_scales)
    return tuple(counts), per_channel


def onnx_logits(path: Path, inputs: np.ndarray, threads: int | None = None, batch: int = 64) -> np.ndarray:
    """Logits of the ONNX file at ``path`` on preprocessed ``inputs``."""
    import numpy as np

    session = ort_session(path, threads=threads)
    return np.concatenate([session.run(["logits"], {"input": inputs[i:i + batch]})[0]
                           for i in range(0, len(inputs), batch)])


def onnx_accuracy(path: Path, inputs: np.ndarray, labels: np.ndarray, threads: int | None) -> float:
    """Top-1 accuracy of the ONNX file at ``path`` on preprocessed ``inputs``."""
    return float((onnx_logits(path, inputs, threads).argmax(1) == labels).mean())
