"""Export a model to ONNX that a consumer can use alone.

The exporter is torch's current one (``dynamo=True``, via onnxscript) with a dynamic batch axis
and the names ``input`` / ``logits``; the legacy TorchScript exporter is used only when the new one
fails, and the file says so. Preprocessing (input size, mean/std, channels, class names) is written
into the model's metadata. Every file passes ``onnx.checker.check_model(full_check=True)`` before
it appears at its destination: it is written in a temporary folder beside it and renamed, so a
failure (or a full disk) never leaves a partial file or replaces a good one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.data.preprocess import resolve_preprocess
from harness.models.sources import resolve_model
from registry import ExportError, UsageError, keys
from registry.files import TMP_PREFIX, atomic_write_bytes, check_out_path, sha256_file
from registry.store import ModelVersion

if TYPE_CHECKING:
    from torch import nn

    from harness.context import Context

DEFAULT_OPSET = 18
OPSETS = range(13, 24)
"""Opsets the exporters are asked for; others are refused before any work."""
INLINE_LIMIT = 1_800_000_000  # protobuf's 2 GB ceiling, with room: larger models keep external data


@dataclass(frozen=True)
class ExportInfo:
    """What was written: the file, which exporter made it (and why the fallback), opset, hash."""

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


@dataclass(frozen=True)
class ExportResult:
    """An export of a MODEL argument: the file and the registry version it was attached to (if any)."""

    info: ExportInfo
    version: ModelVersion | None


def _operator_hint(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("aten::", "aten."):
        if marker in text:
            start = text.index(marker)
            return text[start:start + 60].split()[0].strip("'\",.:)")
    return ""


MACHINE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _reraise_machine_errors(exc: BaseException) -> None:
    """A full disk or an unwritable folder is not an exporter failure: let it reach the CLI as is."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in MACHINE_ERRNOS:
            raise cause
        cause = cause.__cause__ or cause.__context__


@contextlib.contextmanager
def _quiet_exporter_logs() -> Iterator[None]:
    """The exporters log their internal retries with tracebacks (opset conversion that falls back,
    for one); harness reports what matters (exporter, real opset, fallback reason) itself."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "torch.onnx", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _write(model: nn.Module, out: Path, input_size: int, channels: int, opset: int) -> tuple[str, str | None]:
    """Run the dynamo exporter (the legacy one if it fails); returns (exporter, fallback reason)."""
    import torch

    example = torch.randn(2, channels, input_size, input_size)
    inline = sum(p.numel() * p.element_size() for p in model.parameters()) < INLINE_LIMIT
    with warnings.catch_warnings(), _quiet_exporter_logs():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(model, (example,), dynamo=True, input_names=["input"],
                                        output_names=["logits"], opset_version=opset,
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
            assert program is not None  # dynamo=True without a file name returns the program
            program.save(str(out), external_data=not inline)
            return "dynamo", None
        except Exception as exc:  # the new exporter cannot handle every model: fall back, and say so
            _reraise_machine_errors(exc)
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
            try:
                torch.onnx.export(model, (example,), str(out), dynamo=False, input_names=["input"],
                                  output_names=["logits"], opset_version=opset,
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            except Exception as legacy:
                _reraise_machine_errors(legacy)
                op = _operator_hint(legacy) or _operator_hint(exc)
                raise ExportError(f"cannot export to ONNX{f' (operator {op})' if op else ''}: "
                                  f"{str(legacy).strip().splitlines()[0][:200]}") from None
            return "torchscript", reason


def _finish(out: Path, meta: dict[str, Any]) -> int:
    """Write ``meta`` into the file's metadata, run the full checker; returns the file's real opset."""
    import onnx

    proto = onnx.load(str(out), load_external_data=False)
    del proto.metadata_props[:]
    for key, value in sorted(meta.items()):
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    atomic_write_bytes(out, proto.SerializeToString())
    onnx.checker.check_model(str(out), full_check=True)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def export_onnx(model: nn.Module, out: str | os.PathLike[str], *, input_size: int, channels: int = 3,
                metadata: dict[str, Any] | None = None, opset: int = DEFAULT_OPSET) -> ExportInfo:
    """Export ``model`` (eval mode, CPU) to ``out`` atomically; returns what was written."""
    if opset not in OPSETS:
        raise UsageError(f"{{param}} {opset} is not supported; use {OPSETS.start}..{OPSETS.stop - 1}", param="opset")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-export-", dir=out.parent))
    try:
        tmp = staging / out.name
        exporter, reason = _write(model.to("cpu").eval(), tmp, input_size, channels, opset)
        meta = {"exporter": exporter, "input_size": input_size, "channels": channels, **(metadata or {})}
        if reason:
            meta["exporter_fallback_reason"] = reason
        real_opset = _finish(tmp, meta)
        data = tmp.with_name(tmp.name + ".data")
        if data.is_file():
            os.replace(data, out.with_name(out.name + ".data"))
        os.replace(tmp, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    final_data = out.with_name(out.name + ".data")
    return ExportInfo(out, exporter, real_opset, sha256_file(out), out.stat().st_size,
                      final_data if final_data.is_file() else None, reason)


def _temperature(ctx: Context, version: ModelVersion, *, record: bool) -> dict[str, Any]:
    """The version's temperature (fitted on validation, see :mod:`harness.predictions.calibration`) as
    metadata: ``temperature`` and the image set it was fitted on. Written as metadata, not into the
    graph, so the file still outputs the logits PyTorch does (parity, INT8 and argmax unchanged) and a
    consumer gets calibrated probabilities with ``softmax(logits / temperature)``."""
    from harness.predictions.calibration import ensure_calibration

    found = ensure_calibration(ctx, version, record=record)
    return {} if found is None else {"temperature": found.temperature, "temperature_fitted_on": found.fitted_on}


def export_model(ctx: Context, model_ref: str, out_dir: str | os.PathLike[str] | None = None, *,
                 opset: int = DEFAULT_OPSET, register: bool = True, input_size: int | None = None) -> ExportResult:
    """Export MODEL to ONNX (``out_dir``, or a new temporary folder) and attach the file to its
    registry version (at the model's own input size only)."""
    if out_dir:
        check_out_path(out_dir, "out_dir", folder=True)  # before the model is built and exported
    source = resolve_model(ctx, model_ref)
    if register and input_size is None and source.version is not None:
        ctx.store.require_writable()  # before the export, not after it
    if input_size is not None and source.backbone.fixed_input_size and input_size != source.backbone.input_size:
        raise UsageError(f"{source.backbone.name} only accepts {source.backbone.input_size}px inputs; "
                         "drop {param}", param="input_size")
    pre = resolve_preprocess(source, input_size, channels_last=False)
    model = source.build()
    version = source.version
    stem = f"{version.name}-v{version.version}" if version else model_ref.replace("/", "_").replace(".", "_")
    metadata = {"backbone": source.backbone.name, "num_classes": source.output_classes(), "mean": list(pre.mean),
                "std": list(pre.std), "class_names": list(source.class_names or ()), "model": source.label}
    if version is not None:
        metadata["weights_sha256"] = version.artifacts[keys.ROLE_WEIGHTS].sha256
        metadata.update(_temperature(ctx, version, record=register))
    folder = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="harness-onnx-"))
    info = export_onnx(model, folder / f"{stem}.onnx", input_size=pre.input_size, channels=pre.channels,
                       metadata=metadata, opset=opset)
    if info.opset != opset:
        ctx.progress.warn(f"asked for opset {opset}; the {info.exporter} exporter wrote opset {info.opset} (the file's "
                          "real opset is what is recorded)")
    if register and input_size is None and version is not None and info.external_data is None:
        version = ctx.store.add_artifact(version.ref, keys.ROLE_ONNX, info.path, {
            "opset": info.opset, "exporter": info.exporter, "fallback_reason": info.fallback_reason})
    return ExportResult(info, version)


def stored_or_export(ctx: Context, version: ModelVersion | None, model_ref: str, workdir: Path, *,
                     record: bool) -> tuple[Path, str]:
    """The version's stored ONNX artifact (copied to ``workdir``) when it is intact, else a fresh
    export (attached to the version when ``record``: not with --no-record, which must work on a
    read-only store); and which it was. A stored file that is damaged is said, not silently replaced."""
    artifact = version.artifacts.get(keys.ROLE_ONNX) if version is not None else None
    if artifact is not None and ctx.store.blobs.verify(artifact.sha256):
        path = workdir / "model.onnx"
        ctx.store.blobs.export(artifact.sha256, path)
        return path, "registry artifact"
    if artifact is not None:
        ctx.progress.warn(f"the stored ONNX file of {model_ref} is missing or damaged (sha256 mismatch); exporting "
                          "it again from the weights" + (" and replacing it in the store" if record else ""))
    label = "re-exported (stored file damaged)" if artifact is not None else "new export"
    return export_model(ctx, model_ref, workdir, register=record).info.path, label
