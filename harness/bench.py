"""Latency and throughput of a model in PyTorch eager, ONNX Runtime FP32 and ONNX Runtime INT8.

Every runtime uses the same thread count and runs in its own process per round, rounds
interleaved (torch, ort, int8, torch, ...), so machine noise spreads evenly; medians, p90 and the
ratios (ORT/eager, INT8/FP32) come from the same run. INT8 is ONNX Runtime's static quantization
(QDQ, per-channel weights) calibrated on the task's training images; its accuracy change is
measured against FP32 ORT on the task's test images.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harness.export import ort_session
from harness.parity import _source_preprocess, export_model
from harness.sources import resolve_model
from harness.train.batches import to_model_input
from harness.train.finetune import subset, task_data
from harness.train.recipe import Recipe
from registry import Catalogue, UsageError
from registry.store import ModelStore

RUNTIMES = ("torch", "onnxruntime", "onnxruntime-int8")


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


def _accuracy(path: Path, inputs: np.ndarray, labels: np.ndarray, threads: int) -> float:
    session = ort_session(path, threads=threads)
    preds = np.concatenate([session.run(["logits"], {"input": inputs[i:i + 64]})[0].argmax(1)
                            for i in range(0, len(inputs), 64)])
    return float((preds == labels).mean())


def _worker(runtime: str, model: str, batches: list[int], shape: tuple[int, ...], threads: int, iters: int,
            warmup: int, num_classes: int, home: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "harness.bench_worker", "--runtime", runtime, "--model", model,
           "--batch-sizes", ",".join(map(str, batches)), "--shape", ",".join(map(str, shape)),
           "--threads", str(threads), "--iters", str(iters), "--warmup", str(warmup),
           "--num-classes", str(num_classes), "--home", str(home)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise UsageError(f"benchmark worker for {runtime} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)


def bench(catalogue: Catalogue, store: ModelStore, model_ref: str, *, batch_sizes: tuple[int, ...] = (1, 32),
          runtimes: tuple[str, ...] = RUNTIMES, threads: int | None = None, rounds: int = 3, iters: int = 10,
          warmup: int = 3, task_name: str | None = None, samples: int = 500, data_dir: str | None = None,
          record: bool = True, input_size: int | None = None) -> dict[str, Any]:
    """Benchmark MODEL; returns rows per runtime and batch size plus ratios and model figures."""
    import torch

    from harness.models import count_flops, count_params

    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise UsageError(f"unknown runtime {unknown[0]!r}; use {', '.join(RUNTIMES)}")
    threads = threads or torch.get_num_threads()
    source = resolve_model(catalogue, store, model_ref)
    version = source.version
    num_classes = source.num_classes or (source.tag.num_classes if source.tag else None) or 1000
    pre = _source_preprocess(source, catalogue, input_size)
    shape = (pre.channels, pre.input_size, pre.input_size)
    model = source.build(catalogue, num_classes).eval()
    report: dict[str, Any] = {
        "model": version.ref if version else model_ref, "threads": threads, "input": list(shape),
        "params": count_params(model), "flops": count_flops(model, pre.input_size, pre.channels),
        "flops_unit": "FLOPs, 2 per multiply-add, batch 1", "rounds": rounds, "iters": iters,
    }
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        tmp_path = Path(tmp)
        files: dict[str, str] = {"torch": version.ref if version else model_ref}
        if any(r.startswith("onnxruntime") for r in runtimes):
            info, _ = export_model(catalogue, store, model_ref, tmp_path, register=record, input_size=input_size)
            files["onnxruntime"] = str(info.path)
            report["onnx_size_mb"] = round(info.size / 1e6, 3)
        if "onnxruntime-int8" in runtimes:
            task_name = task_name or (version.task if version else None)
            if not task_name:
                raise UsageError("INT8 calibration needs training images: pass --task")
            task = catalogue.tasks.get(task_name)
            data = task_data(catalogue, task, Recipe(val_fraction=0.0, train_limit=256), data_dir=data_dir,
                             image_size=pre.input_size)
            calib = to_model_input(data.train.images, pre).numpy()
            int8 = quantize_int8(Path(files["onnxruntime"]), tmp_path / "int8.onnx", calib)
            files["onnxruntime-int8"] = str(int8)
            report["int8_size_mb"] = round(int8.stat().st_size / 1e6, 3)
            test = subset(data.test, samples, 99)
            inputs, labels = to_model_input(test.images, pre).numpy(), test.labels.numpy()
            fp32_acc = _accuracy(Path(files["onnxruntime"]), inputs, labels, threads)
            int8_acc = _accuracy(int8, inputs, labels, threads)
            report["accuracy"] = {"onnxruntime": fp32_acc, "onnxruntime-int8": int8_acc, "samples": len(labels),
                                  "int8_change_points": round(100 * (int8_acc - fp32_acc), 2)}
        samples_ms: dict[tuple[str, int], list[float]] = {}
        peak: dict[str, float] = {}
        for _ in range(rounds):
            for runtime in runtimes:
                out = _worker(runtime, files[runtime], list(batch_sizes), shape, threads, iters, warmup, num_classes,
                              store.home)
                peak[runtime] = max(peak.get(runtime, 0.0), out["peak_rss_mb"])
                for b, values in out["latencies_ms"].items():
                    samples_ms.setdefault((runtime, int(b)), []).extend(values)
    rows = []
    for (runtime, b), values in sorted(samples_ms.items(), key=lambda kv: (kv[0][1], RUNTIMES.index(kv[0][0]))):
        median = statistics.median(values)
        rows.append({"runtime": runtime, "batch": b, "median_ms": round(median, 3),
                     "p90_ms": round(float(np.percentile(values, 90)), 3),
                     "images_per_s": round(b / (median / 1000), 1), "peak_rss_mb": round(peak[runtime], 1)})
    medians = {(r["runtime"], r["batch"]): r["median_ms"] for r in rows}
    ratios = {}
    for b in batch_sizes:
        if ("torch", b) in medians and ("onnxruntime", b) in medians:
            ratios[f"ort_vs_eager_b{b}"] = round(medians[("torch", b)] / medians[("onnxruntime", b)], 2)
        if ("onnxruntime", b) in medians and ("onnxruntime-int8", b) in medians:
            ratios[f"int8_vs_fp32_b{b}"] = round(medians[("onnxruntime", b)] / medians[("onnxruntime-int8", b)], 2)
    report["rows"] = rows
    report["speedups"] = ratios
    if record and version is not None and input_size is None:
        store.update_metrics(version.ref, {"bench": {k: v for k, v in report.items() if k != "model"}})
    return report
