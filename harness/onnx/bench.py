"""Latency and throughput of a model in PyTorch eager, ONNX Runtime FP32 and ONNX Runtime INT8.

Every runtime uses the same thread count and runs in its own process per round, rounds
interleaved (torch, ort, int8, torch, ...), so machine noise spreads evenly; medians, p90, each
round's median and the ratios (ORT/eager, INT8/FP32) come from the same run
(:mod:`harness.onnx.timing`). The eager worker is handed the caller's
:class:`~harness.context.Context` as data, so it builds the model with the same plugins and store.
The INT8 runtime times a file quantised by the caller (``int8_file``):
:func:`harness.evaluate.int8_check.bench_int8` makes one, scores it and decides whether it is offered.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness.data.preprocess import resolve_preprocess
from harness.models.sources import resolve_model
from harness.onnx.contention import busy_cores, timing_problems
from harness.onnx.export import export_model
from harness.onnx.report import RUNTIMES, BenchReport, BenchRow
from harness.onnx.timing import Timing, Timings, measure, worker_env
from registry import UsageError, keys

__all__ = ["bench", "worker_env"]

if TYPE_CHECKING:
    from harness.context import Context


def _rows(timings: Timings) -> tuple[BenchRow, ...]:
    """Medians and p90 over every sample of every round, per runtime and batch size."""
    import numpy as np

    rows = []
    for (runtime, b) in sorted(timings.samples, key=lambda k: (k[1], RUNTIMES.index(k[0]))):
        values = timings.pooled(runtime, b)
        median = statistics.median(values)
        rows.append(BenchRow(runtime, b, round(median, 3), round(float(np.percentile(values, 90)), 3),
                             round(b / (median / 1000), 1), round(timings.peak_rss_mb[runtime], 1), len(values),
                             " | ".join(sorted(s for s in timings.setups[(runtime, b)] if s)),
                             tuple(round(m, 4) for m in timings.round_medians(runtime, b))))
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


def _check_memory(batch: int, shape: tuple[int, int, int]) -> None:
    """Refuse a batch whose float32 input alone would take over half the free memory, before any
    export or worker starts (the activations need several times more)."""
    from harness.environment import available_memory

    need = batch * shape[0] * shape[1] * shape[2] * 4
    free = available_memory(None)  # the host's and the cgroup's: benchmarks run on CPU
    if free is not None and need > free / 2:
        raise UsageError(f"{{param}}: batch {batch:,} at {shape[0]}x{shape[1]}x{shape[2]} needs {_gib(need)} "
                         f"for its input alone and {_gib(free)} is free; use a smaller batch size",
                         param="batch_sizes")


def _gib(size: int) -> str:
    """Bytes as GiB, without a 20-digit figure for an absurd batch."""
    gib = size / 2**30
    return f"{gib:.1f} GiB" if gib < 1e6 else "over a million GiB"


def bench(ctx: Context, model_ref: str, *, batch_sizes: tuple[int, ...] = (1, 32), runtimes: tuple[str, ...] = RUNTIMES,
          threads: int | None = None, rounds: int = 3, iters: int = 10, warmup: int = 3, record: bool = True,
          input_size: int | None = None, onnx_file: str | Path | None = None,
          int8_file: str | Path | None = None) -> BenchReport:
    """Benchmark MODEL; ``onnx_file`` is its export when the caller already made one (select does),
    ``int8_file`` the INT8 file the ``onnxruntime-int8`` runtime times."""
    import torch

    from harness.models.build import count_flops, count_params

    _check_options(batch_sizes, runtimes, threads, rounds, iters)
    if "onnxruntime-int8" in runtimes and int8_file is None:
        raise UsageError("the onnxruntime-int8 runtime times a quantised file: pass {param} (harness.evaluate."
                         "int8_check.bench_int8 quantises, scores and decides)", param="int8_file")
    threads = threads or torch.get_num_threads()
    source = resolve_model(ctx, model_ref)
    if record and source.version is not None:
        ctx.store.require_writable()  # the figures are recorded with the version: refuse before measuring
    pre = resolve_preprocess(source, input_size, channels_last=False)
    shape = (pre.channels, pre.input_size, pre.input_size)
    _check_memory(max(batch_sizes), shape)
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
        if int8_file is not None:
            files["onnxruntime-int8"] = str(int8_file)
            report = dataclasses.replace(report, int8_size_mb=round(Path(int8_file).stat().st_size / 1e6, 3))
        before = busy_cores()
        rows = _rows(measure(ctx, files, runtimes, Timing(batch_sizes, shape, threads, rounds, iters, warmup)))
        spreads = {f"{r.runtime} b{r.batch}": r.p90_ms / r.median_ms for r in rows if r.median_ms > 0}
        problems = timing_problems([before, busy_cores()], spreads)
        report = dataclasses.replace(report, rows=rows, timing_problems=tuple(problems))
        for problem in problems:
            ctx.progress.warn(f"latency of {source.label} may be wrong: {problem}")
    if record and source.version is not None and input_size is None:
        ctx.store.update_metrics(source.version.ref, {keys.BENCH: report.stored()})
    return report
