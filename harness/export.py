"""Export a model to ONNX that a consumer can use alone, and load ONNX files safely.

The exporter is torch's current one (``dynamo=True``, via onnxscript) with a dynamic batch axis
and the names ``input`` / ``logits``; the legacy TorchScript exporter is used only when the new one
fails, and the file says so. Preprocessing (input size, mean/std, channels, class names) is written
into the model's metadata. Every file passes ``onnx.checker.check_model(full_check=True)``.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry import DataError, UsageError
from registry.files import atomic_write_bytes, sha256_file

DEFAULT_OPSET = 18
INLINE_LIMIT = 1_800_000_000  # protobuf's 2 GB ceiling, with room: larger models keep external data


@dataclass(frozen=True)
class ExportInfo:
    path: Path
    exporter: str
    opset: int
    sha256: str
    size: int
    external_data: Path | None = None
    fallback_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "exporter": self.exporter, "opset": self.opset, "sha256": self.sha256,
                "size": self.size, "external_data": str(self.external_data) if self.external_data else None,
                "fallback_reason": self.fallback_reason}


def _operator_hint(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("aten::", "aten."):
        if marker in text:
            start = text.index(marker)
            return text[start:start + 60].split()[0].strip("'\",.:)")
    return ""


def export_onnx(model, out: str | os.PathLike[str], *, input_size: int, channels: int = 3,
                metadata: dict[str, Any] | None = None, opset: int = DEFAULT_OPSET) -> ExportInfo:
    """Export ``model`` (eval mode, CPU) to ``out``; returns what was written."""
    import onnx
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    example = torch.randn(2, channels, input_size, input_size)
    params_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    inline = params_bytes < INLINE_LIMIT
    exporter, reason = "dynamo", None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(model, (example,), dynamo=True, input_names=["input"],
                                        output_names=["logits"], opset_version=opset,
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
            program.save(str(out), external_data=not inline)
        except Exception as exc:  # the new exporter cannot handle every model: fall back, and say so
            exporter, reason = "torchscript", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            try:
                torch.onnx.export(model, (example,), str(out), dynamo=False, input_names=["input"],
                                  output_names=["logits"], opset_version=opset,
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            except Exception as legacy:
                op = _operator_hint(legacy) or _operator_hint(exc)
                raise UsageError(f"cannot export to ONNX{f' (operator {op})' if op else ''}: "
                                 f"{str(legacy).strip().splitlines()[0][:200]}") from None
    proto = onnx.load(str(out), load_external_data=False)
    meta = {"exporter": exporter, "input_size": input_size, "channels": channels, **(metadata or {})}
    if reason:
        meta["exporter_fallback_reason"] = reason
    del proto.metadata_props[:]
    for key, value in sorted(meta.items()):
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    atomic_write_bytes(out, proto.SerializeToString())
    onnx.checker.check_model(str(out), full_check=True)
    data = out.with_name(out.name + ".data")
    return ExportInfo(out, exporter, opset, sha256_file(out), out.stat().st_size,
                      data if data.is_file() else None, reason)


def check_external_data(path: str | os.PathLike[str]) -> list[Path]:
    """Refuse external-data locations outside the model's folder or through symbolic links."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    path = Path(path)
    if path.is_symlink():
        raise DataError(f"{path} is a symbolic link; refusing to load it")
    folder = path.parent.resolve()
    proto = onnx.load(str(path), load_external_data=False)
    files = []
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append(attr.t)
    for tensor in tensors:
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        candidate = path.parent / location
        if Path(location).is_absolute() or ".." in Path(location).parts:
            raise DataError(f"{path}: external data location {location!r} is outside the model's folder; refusing")
        current = candidate
        while current != path.parent and current != current.parent:
            if current.is_symlink():
                raise DataError(f"{path}: external data {location!r} goes through a symbolic link; refusing")
            current = current.parent
        if not candidate.resolve().is_relative_to(folder):
            raise DataError(f"{path}: external data {location!r} resolves outside the model's folder; refusing")
        files.append(candidate)
    return files


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    result: dict[str, Any] = {}
    for entry in proto.metadata_props:
        try:
            result[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            result[entry.key] = entry.value
    return result


def ort_session(path: str | os.PathLike[str], threads: int | None = None, providers: list[str] | None = None):
    """An InferenceSession with explicit providers (checked), no spinning threads, safe external data."""
    import onnxruntime as ort

    check_external_data(path)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    wanted = providers or ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    if session.get_providers()[0] != wanted[0]:
        raise UsageError(f"ONNX Runtime fell back to {session.get_providers()[0]} instead of {wanted[0]}")
    return session
