"""Latency and throughput of a model in PyTorch eager, ONNX Runtime FP32 and ONNX Runtime INT8.

Every runtime uses the same thread count and runs in its own process per round, rounds
interleaved (torch, ort, int8, torch, ...), so machine noise spreads evenly; medians, p90 and the
ratios (ORT/eager, INT8/FP32) come from the same run. The eager worker is handed the caller's
:class:`~harness.context.Context` as data, so it builds the model with the same plugins and store.
INT8 is ONNX Runtime's static quantization calibrated on the task's training images; its accuracy
change is measured against FP32 ORT on the task's test images.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness.data.preprocess import Preprocess, resolve_preprocess, to_model_input
from harness.data.splits import load_task_data
from harness.models.sources import ModelSource, resolve_model
from harness.onnx.contention import busy_cores, timing_problems
from harness.onnx.export import export_model
from harness.onnx.quantize import onnx_accuracy, quantize_int8
from harness.onnx.report import RUNTIMES, BenchReport, BenchRow, Int8Accuracy
from registry import BenchmarkError, UsageError, keys

if TYPE_CHECKING:
    from harness.context import Context


def worker_env(threads: int) -> dict[str, str]:
    """The environment of a worker process: this one's import path (so plugins passed in code
    import there too) and the thread count for OpenMP."""
    path = os.pathsep.join(p for p in sys.path if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(threads), "HARNESS_THREADS": str(threads)}


def _worker(ctx: Context, runtime: str, model: str, batches: list[int], shape: tuple[int, ...], threads: int,
            iters: int, warmup: int) -> dict:
    cmd = [sys.executable, "-m", "harness.onnx.worker", "--runtime", runtime, "--model", model,
           "--batch-sizes", ",".join(map(str, batches)), "--shape", ",".join(map(str, shape)),
           "--threads", str(threads), "--iters", str(iters), "--warmup", str(warmup)]
    if runtime == "torch":
        cmd += ["--context", ctx.spec().to_json()]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(threads))
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(f"benchmark worker for {runtime} failed: {last}")
    return json.loads(proc.stdout)


def _int8(ctx: Context, source: ModelSource, pre: Preprocess, fp32: Path, tmp: Path, task_name: str | None,
          samples: int, threads: int) -> tuple[Path, Int8Accuracy]:
    """Quantize ``fp32`` on 256 training images of the task; measure both on ``samples`` test images."""
    task_name = task_name or (source.version.task if source.version else None)
    if not task_name:
        raise UsageError("INT8 calibration needs training images: pass {param}", param="task_name")
    task = ctx.catalogue.task(task_name)
    data = load_task_data(ctx, task, image_size=pre.input_size, train_limit=256, test_limit=samples,
                          val_fraction=0.0, seed=98)
    int8 = quantize_int8(fp32, tmp / "int8.onnx", to_model_input(data.train.images, pre).numpy())
    inputs, labels = to_model_input(data.test.images, pre).numpy(), data.test.labels.numpy()
    accuracy = Int8Accuracy(onnx_accuracy(fp32, inputs, labels, threads), onnx_accuracy(int8, inputs, labels, threads),
                            len(labels))
    return int8, accuracy


def _measure(ctx: Context, files: dict[str, str], runtimes: tuple[str, ...], batch_sizes: tuple[int, ...],
             shape: tuple[int, ...], threads: int, rounds: int, iters: int, warmup: int) -> tuple[BenchRow, ...]:
    """Interleaved rounds of one worker process per runtime; medians and p90 over every sample."""
    import numpy as np

    samples: dict[tuple[str, int], list[float]] = {}
    setups: dict[tuple[str, int], set[str]] = {}
    peak: dict[str, float] = {}
    for _ in range(rounds):
        for runtime in runtimes:
            out = _worker(ctx, runtime, files[runtime], list(batch_sizes), shape, threads, iters, warmup)
            peak[runtime] = max(peak.get(runtime, 0.0), out["peak_rss_mb"])
            for b, values in out["latencies_ms"].items():
                samples.setdefault((runtime, int(b)), []).extend(values)
                setups.setdefault((runtime, int(b)), set()).add(out.get("setup", {}).get(b, ""))
    rows = []
    for (runtime, b), values in sorted(samples.items(), key=lambda kv: (kv[0][1], RUNTIMES.index(kv[0][0]))):
        median = statistics.median(values)
        rows.append(BenchRow(runtime, b, round(median, 3), round(float(np.percentile(values, 90)), 3),
                             round(b / (median / 1000), 1), round(peak[runtime], 1), len(values),
                             " | ".join(sorted(s for s in setups[(runtime, b)] if s))))
    return tuple(rows)


def _check_options(batch_sizes: tuple[int, ...], runtimes: tuple[str, ...], threads: int | None, rounds: int,
                   iters: int) -> None:
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise UsageError(f"unknown runtime {unknown[0]!r} in {{param}}; use {', '.join(RUNTIMES)}", param="runtimes")
    if not batch_sizes or min(batch_sizes) < 1:
        raise UsageError("{param} must be positive integers like 1,32", param="batch_sizes")
    for param, value in (("threads", threads), ("rounds", rounds), ("iters", iters)):
        if value is not None and value < 1:
            raise UsageError("{param} must be at least 1", param=param)


def bench(ctx: Context, model_ref: str, *, batch_sizes: tuple[int, ...] = (1, 32), runtimes: tuple[str, ...] = RUNTIMES,
          threads: int | None = None, rounds: int = 3, iters: int = 10, warmup: int = 3, task_name: str | None = None,
          samples: int = 500, record: bool = True, input_size: int | None = None,
          onnx_file: str | Path | None = None) -> BenchReport:
    """Benchmark MODEL; ``onnx_file`` is its export when the caller already made one (select does)."""
    import torch

    from harness.models.build import count_flops, count_params

    _check_options(batch_sizes, runtimes, threads, rounds, iters)
    threads = threads or torch.get_num_threads()
    source = resolve_model(ctx, model_ref)
    pre = resolve_preprocess(source, input_size, channels_last=False)
    shape = (pre.channels, pre.input_size, pre.input_size)
    model = source.build().eval()
    report = BenchReport(model=source.label, threads=threads, input=shape, params=count_params(model),
                         flops=count_flops(model, pre.input_size, pre.channels), rounds=rounds, iters=iters)
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        files: dict[str, str] = {"torch": source.label}
        if any(r.startswith("onnxruntime") for r in runtimes):
            path = Path(onnx_file) if onnx_file else export_model(
                ctx, model_ref, tmp, register=record, input_size=input_size).info.path
            files["onnxruntime"] = str(path)
            report = dataclasses.replace(report, onnx_size_mb=round(path.stat().st_size / 1e6, 3))
        if "onnxruntime-int8" in runtimes:
            int8, accuracy = _int8(ctx, source, pre, Path(files["onnxruntime"]), Path(tmp), task_name, samples,
                                   threads)
            files["onnxruntime-int8"] = str(int8)
            report = dataclasses.replace(report, int8_size_mb=round(int8.stat().st_size / 1e6, 3),
                                         accuracy=accuracy)
        before = busy_cores()
        rows = _measure(ctx, files, runtimes, batch_sizes, shape, threads, rounds, iters, warmup)
        spreads = {f"{r.runtime} b{r.batch}": r.p90_ms / r.median_ms for r in rows if r.median_ms > 0}
        problems = timing_problems([before, busy_cores()], spreads)
        report = dataclasses.replace(report, rows=rows, timing_problems=tuple(problems))
        for problem in problems:
            ctx.progress.warn(f"latency of {source.label} may be wrong: {problem}")
    if record and source.version is not None and input_size is None:
        ctx.store.update_metrics(source.version.ref, {keys.BENCH: report.stored()})
    return report

