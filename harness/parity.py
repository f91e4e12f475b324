"""Export registered models and prove ONNX Runtime agrees with PyTorch on the task's own test data.

The ONNX side is preprocessed from the file's own metadata (as a consumer would); PyTorch gets the
same tensors. ORT runs at batch 1 and at another batch size than the export's, so a broken
dynamic batch axis shows. A model passes when top-1 agreement is 100% and every logit is within
``atol + rtol * |torch|``; the result (and a ``parity`` tag) is recorded with the version.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.export import ExportInfo, check_external_data, export_onnx, ort_session, read_onnx_metadata
from harness.sources import ModelSource, resolve_model
from harness.train.batches import Preprocess, to_model_input
from harness.train.finetune import preprocess_for, subset, task_data
from harness.train.recipe import Recipe
from registry import Catalogue, UsageError
from registry.store import ModelStore, ModelVersion


def _source_preprocess(source: ModelSource, catalogue: Catalogue, input_size: int | None = None) -> Preprocess:
    if input_size is not None:
        b = source.backbone
        if b.fixed_input_size and input_size != b.input_size:
            raise UsageError(f"{b.name} only accepts {b.input_size}px inputs")
        base = _source_preprocess(source, catalogue)
        return Preprocess(input_size=max(input_size, b.min_input_size), channels=base.channels, mean=base.mean,
                          std=base.std, channels_last=False)
    if source.preprocess:
        p = source.preprocess
        return Preprocess(input_size=p["input_size"], channels=p.get("channels", 3), mean=tuple(p["mean"]),
                          std=tuple(p["std"]), channels_last=False)
    b, tag = source.backbone, source.tag
    size = (tag.input_size if tag and tag.input_size else None) or b.input_size
    return Preprocess(input_size=size, channels=b.channels, mean=tuple(tag.mean if tag and tag.mean else b.mean),
                      std=tuple(tag.std if tag and tag.std else b.std), channels_last=False)


def export_model(catalogue: Catalogue, store: ModelStore | None, model_ref: str, out_dir: str | Path | None = None,
                 opset: int = 18, register: bool = True,
                 input_size: int | None = None) -> tuple[ExportInfo, ModelVersion | None]:
    """Export MODEL to ONNX (``out_dir`` or a temporary folder) and attach it to its registry version."""
    source = resolve_model(catalogue, store, model_ref)
    num_classes = source.num_classes or (source.tag.num_classes if source.tag else None) or 1000
    pre = _source_preprocess(source, catalogue, input_size)
    model = source.build(catalogue, num_classes)
    version = source.version
    register = register and input_size is None  # the registered artifact is at the model's own size
    stem = f"{version.name}-v{version.version}" if version else model_ref.replace("/", "_").replace(".", "_")
    metadata = {"backbone": source.backbone.name, "num_classes": num_classes, "mean": list(pre.mean),
                "std": list(pre.std), "class_names": list(source.class_names or ()),
                "model": version.ref if version else model_ref}
    if version is not None:
        metadata["weights_sha256"] = version.artifacts["weights"].sha256
    folder = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="harness-onnx-"))
    info = export_onnx(model, folder / f"{stem}.onnx", input_size=pre.input_size, channels=pre.channels,
                       metadata=metadata, opset=opset)
    if register and version is not None and store is not None and info.external_data is None:
        version = store.add_artifact(version.ref, "onnx", info.path, {
            "opset": info.opset, "exporter": info.exporter, "fallback_reason": info.fallback_reason})
    return info, version


def _ort_logits(session, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    outs = [session.run(["logits"], {"input": inputs[i:i + batch_size]})[0] for i in range(0, len(inputs), batch_size)]
    return np.concatenate(outs)


def check_parity(catalogue: Catalogue, store: ModelStore | None, model_or_onnx: str, task_name: str | None = None,
                 *, samples: int = 256, atol: float = 1e-4, rtol: float = 1e-3, batch_size: int = 16,
                 data_dir: str | None = None, download: bool = False, threads: int | None = None,
                 record: bool = True) -> dict[str, Any]:
    """Compare ONNX Runtime with PyTorch on ``samples`` test images of the task."""
    with tempfile.TemporaryDirectory(prefix="harness-onnx-") as tmp:
        return _check_parity(catalogue, store, model_or_onnx, task_name, Path(tmp), samples=samples, atol=atol,
                             rtol=rtol, batch_size=batch_size, data_dir=data_dir, download=download,
                             threads=threads, record=record)


def _check_parity(catalogue: Catalogue, store: ModelStore | None, model_or_onnx: str, task_name: str | None,
                  tmp: Path, *, samples: int, atol: float, rtol: float, batch_size: int, data_dir: str | None,
                  download: bool, threads: int | None, record: bool) -> dict[str, Any]:
    onnx_path: Path | None = None
    if model_or_onnx.endswith(".onnx"):
        onnx_path = Path(model_or_onnx)
        if not onnx_path.exists() and not onnx_path.is_symlink():
            raise UsageError(f"ONNX file {model_or_onnx!r} does not exist")
        check_external_data(onnx_path)  # refuse links and escaping paths before anything is read
        sha = read_onnx_metadata(onnx_path).get("weights_sha256")
        version = store.find_by_sha256(sha) if (store is not None and sha) else None
        if version is None:
            raise UsageError(f"{onnx_path} does not name a registered model (no known weights_sha256); "
                             "check the registry version instead")
        source = resolve_model(catalogue, store, version.ref)
    else:
        source = resolve_model(catalogue, store, model_or_onnx)
        version = source.version
        artifact = version.artifacts.get("onnx") if version else None
        if artifact is not None and store is not None and store.blobs.verify(artifact.sha256):
            onnx_path = tmp / "model.onnx"
            store.blobs.export(artifact.sha256, onnx_path)
        else:
            info, version = export_model(catalogue, store, model_or_onnx, tmp, register=record)
            onnx_path = info.path
    session = ort_session(onnx_path, threads=threads)
    meta = read_onnx_metadata(onnx_path)
    task_name = task_name or (version.task if version else None)
    if not task_name:
        raise UsageError("pass --task: the model does not say which task it was trained for")
    task = catalogue.tasks.get(task_name)
    pre = Preprocess(input_size=int(meta["input_size"]), channels=int(meta.get("channels", 3)),
                     mean=tuple(meta["mean"]), std=tuple(meta["std"]), channels_last=False)
    torch_pre = preprocess_for(source, task, Recipe(), augment=False)
    if (torch_pre.input_size, tuple(torch_pre.mean)) != (pre.input_size, tuple(pre.mean)):
        raise UsageError(f"the ONNX file's preprocessing ({pre.input_size}px) differs from the model's "
                         f"({torch_pre.input_size}px); re-export it")
    data = task_data(catalogue, task, Recipe(), data_dir=data_dir, download=download, image_size=pre.input_size,
                     need_train=False)
    test = subset(data.test, samples, 1234)
    num_classes = source.num_classes or data.num_classes
    model = source.build(catalogue, num_classes).eval()
    inputs = to_model_input(test.images, pre)
    with torch.no_grad():
        reference = torch.cat([model(inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)]).numpy()
    arr = inputs.numpy()
    results = {1: _ort_logits(session, arr, 1), batch_size: _ort_logits(session, arr, batch_size)}
    labels = test.labels.numpy()
    diffs = [np.abs(out - reference) for out in results.values()]
    agreement = min(float((out.argmax(1) == reference.argmax(1)).mean()) for out in results.values())
    within = all(np.allclose(out, reference, atol=atol, rtol=rtol) for out in results.values())
    report = {
        "model": version.ref if version else model_or_onnx, "task": task.name, "samples": len(test),
        "onnx": model_or_onnx if model_or_onnx.endswith(".onnx") else "registry artifact",
        "providers": session.get_providers(), "exporter": meta.get("exporter"),
        "batch_sizes": sorted(results), "max_abs_diff": float(max(d.max() for d in diffs)),
        "mean_abs_diff": float(np.mean([d.mean() for d in diffs])), "top1_agreement": agreement,
        "accuracy_torch": float((reference.argmax(1) == labels).mean()),
        "accuracy_onnx": float((results[batch_size].argmax(1) == labels).mean()),
        "atol": atol, "rtol": rtol, "passed": bool(agreement == 1.0 and within),
    }
    if record and version is not None and store is not None:
        store.update_metrics(version.ref, {"parity": {k: v for k, v in report.items() if k != "onnx"}})
        store.set_tags(version.ref, {"parity": "passed" if report["passed"] else "failed"})
    return report
