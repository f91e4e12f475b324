"""Prove ONNX Runtime agrees with PyTorch on the task's own test data.

The ONNX side is preprocessed from the file's own metadata (as a consumer would); PyTorch gets the
same tensors. ORT runs at batch 1 and at another batch size than the export's, so a broken
dynamic batch axis shows. A model passes when top-1 agreement is 100% and every logit is within
``atol + rtol * |torch|``; the result (and a ``parity`` tag) is recorded with the version.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.data.preprocess import Preprocess, resolve_preprocess, to_model_input
from harness.data.splits import load_test_split
from harness.models.sources import ModelSource, resolve_model
from harness.onnx.export import stored_or_export
from harness.onnx.runtime import check_external_data, harness_metadata, onnx_preprocess, ort_session
from registry import UsageError, keys

if TYPE_CHECKING:
    import numpy as np

    from harness.context import Context


@dataclass(frozen=True)
class ParityReport:
    """ONNX Runtime against PyTorch on ``samples`` test images of ``task``."""

    model: str
    task: str
    samples: int
    onnx: str
    providers: tuple[str, ...]
    exporter: str | None
    batch_sizes: tuple[int, ...]
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    accuracy_torch: float
    accuracy_onnx: float
    atol: float
    rtol: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (same as ``as_dict()``)."""
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["providers"], data["batch_sizes"] = list(self.providers), list(self.batch_sizes)
        return data

    def stored(self) -> dict[str, Any]:
        """What the store keeps under ``metrics["parity"]`` (the file's path is not kept)."""
        return {k: v for k, v in self.as_dict().items() if k != "onnx"}


def _ort_logits(session: Any, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    import numpy as np

    outs = [session.run(["logits"], {"input": inputs[i:i + batch_size]})[0] for i in range(0, len(inputs), batch_size)]
    return np.concatenate(outs)


def _source_of_onnx(ctx: Context, path: Path) -> ModelSource:
    """The registry version an ONNX file from outside the store was exported from."""
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"ONNX file {str(path)!r} does not exist")
    check_external_data(path)  # refuse links and escaping paths before anything is read
    sha = harness_metadata(path).get("weights_sha256")
    version = ctx.store.find_by_sha256(sha) if sha else None
    if version is None:
        raise UsageError(f"{path} does not name a registered model (no known weights_sha256); "
                         "check the registry version instead")
    return resolve_model(ctx, version.ref)


def _described(pre: Preprocess) -> str:
    """What must agree between a file and its model: size, channels, mean and std (rounded)."""
    def numbers(values: Any) -> str:
        return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"

    return f"{pre.input_size}px, {pre.channels} channels, mean {numbers(pre.mean)}, std {numbers(pre.std)}"


def _compare(source: ModelSource, path: Path, pre: Preprocess, test: Any, batch_size: int,
             threads: int | None) -> dict[str, Any]:
    """Logits from PyTorch and from ONNX Runtime (batch 1 and ``batch_size``) on the same tensors."""
    import numpy as np
    import torch

    session = ort_session(path, threads=threads)
    model = source.build().eval()
    inputs = to_model_input(test.images, pre)
    with torch.no_grad():
        reference = torch.cat([model(inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)]).numpy()
    arr = inputs.numpy()
    results = {1: _ort_logits(session, arr, 1), batch_size: _ort_logits(session, arr, batch_size)}
    diffs = [np.abs(out - reference) for out in results.values()]
    labels = test.labels.numpy()
    return {"providers": tuple(session.get_providers()), "batch_sizes": tuple(sorted(results)),
            "max_abs_diff": float(max(d.max() for d in diffs)),
            "mean_abs_diff": float(np.mean([d.mean() for d in diffs])),
            "top1_agreement": min(float((out.argmax(1) == reference.argmax(1)).mean()) for out in results.values()),
            "accuracy_torch": float((reference.argmax(1) == labels).mean()),
            "accuracy_onnx": float((results[batch_size].argmax(1) == labels).mean()),
            "outputs": results, "reference": reference}


def check_parity(ctx: Context, model_or_onnx: str, task_name: str | None = None, *, samples: int = 256,
                 atol: float = 1e-4, rtol: float = 1e-3, batch_size: int = 16, threads: int | None = None,
                 record: bool = True, onnx_file: str | Path | None = None) -> ParityReport:
    """Compare ONNX Runtime with PyTorch on ``samples`` test images of the task.

    ``model_or_onnx`` is a MODEL reference or an ``.onnx`` file exported by harness; ``onnx_file``
    gives the file to check for a MODEL that was just exported (select exports once per candidate).
    """
    for param, value in (("samples", samples), ("batch_size", batch_size)):
        if value < 1:
            raise UsageError("{param} must be at least 1", param=param)
    for param, tolerance in (("atol", atol), ("rtol", rtol)):  # nan would fail a good model, inf pass any
        if not math.isfinite(tolerance) or tolerance < 0:
            raise UsageError(f"{{param}} must be a finite number at least 0, not {tolerance}", param=param)
    with tempfile.TemporaryDirectory(prefix="harness-onnx-") as tmp:
        from_file = model_or_onnx.endswith(".onnx")
        source = _source_of_onnx(ctx, Path(model_or_onnx)) if from_file else resolve_model(ctx, model_or_onnx)
        if record and not from_file and source.version is not None:
            ctx.store.require_writable()  # the result is recorded with the version: refuse before the work
        if onnx_file is not None:
            path, label = Path(onnx_file), str(onnx_file)
        elif from_file:
            path, label = Path(model_or_onnx), model_or_onnx
        else:
            path, label = stored_or_export(ctx, source.version, model_or_onnx, Path(tmp), record=record)
        return _check(ctx, source, path, task_name, samples=samples, atol=atol, rtol=rtol, batch_size=batch_size,
                      threads=threads, record=record and not from_file, label=label)


def _check(ctx: Context, source: ModelSource, path: Path, task_name: str | None, *, samples: int, atol: float,
           rtol: float, batch_size: int, threads: int | None, record: bool, label: str) -> ParityReport:
    import numpy as np

    meta = harness_metadata(path)
    version = source.version
    task_name = task_name or (version.task if version else None)
    if not task_name:
        raise UsageError("pass {param}: the model does not say which task it was trained for", param="task_name")
    task = ctx.catalogue.task(task_name)
    pre = onnx_preprocess(path, meta)
    torch_pre = resolve_preprocess(source, default_size=task.protocol.input_size)
    if _described(pre) != _described(torch_pre):
        raise UsageError(f"the ONNX file's preprocessing ({_described(pre)}) differs from the model's "
                         f"({_described(torch_pre)}); re-export it")
    test = load_test_split(ctx, task, image_size=pre.input_size, limit=samples, seed=1234).test
    found = _compare(source, path, pre, test, batch_size, threads)
    within = all(np.allclose(out, found["reference"], atol=atol, rtol=rtol) for out in found["outputs"].values())
    report = ParityReport(
        model=source.label, task=task.name, samples=len(test), onnx=label,
        providers=found["providers"], exporter=meta.get("exporter"), batch_sizes=found["batch_sizes"],
        max_abs_diff=found["max_abs_diff"], mean_abs_diff=found["mean_abs_diff"],
        top1_agreement=found["top1_agreement"], accuracy_torch=found["accuracy_torch"],
        accuracy_onnx=found["accuracy_onnx"], atol=atol, rtol=rtol,
        passed=bool(found["top1_agreement"] == 1.0 and within))
    if record and version is not None:
        ctx.store.update_metrics(version.ref, {keys.PARITY: report.stored()})
        ctx.store.set_tags(version.ref, {keys.TAG_PARITY: "passed" if report.passed else "failed"})
    return report
