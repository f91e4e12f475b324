"""Timing runtimes against each other in worker processes, rounds interleaved.

Each round starts one fresh process per runtime (``python -m harness.onnx.worker``) in a fixed
order (torch, ort, int8, torch, ...), so machine noise spreads evenly over the runtimes. The
samples are kept per round: a benchmark pools them into medians, and the INT8 decision also asks
whether INT8 won *every* round, which tells a real speed-up from a lucky one on a busy machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from registry import BenchmarkError

if TYPE_CHECKING:
    from harness.context import Context


def worker_env(threads: int) -> dict[str, str]:
    """The environment of a worker process: this one's import path (so plugins passed in code
    import there too) and the thread count for OpenMP."""
    path = os.pathsep.join(p for p in sys.path if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(threads), "HARNESS_THREADS": str(threads)}


@dataclass(frozen=True)
class Timing:
    """How to time: batch sizes, input shape (C, H, W), threads for every runtime, interleaved rounds,
    timed iterations (at least) and warm-up runs per batch size and round."""

    batch_sizes: tuple[int, ...]
    shape: tuple[int, ...]
    threads: int
    rounds: int = 3
    iters: int = 10
    warmup: int = 3


@dataclass
class Timings:
    """Every timed run (ms) per (runtime, batch), one list per round; peak memory and setup per runtime."""

    samples: dict[tuple[str, int], list[list[float]]] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    setups: dict[tuple[str, int], set[str]] = field(default_factory=dict)

    def pooled(self, runtime: str, batch: int) -> list[float]:
        """Every sample of ``runtime`` at ``batch`` over all rounds."""
        return [v for r in self.samples.get((runtime, batch), []) for v in r]

    def median(self, runtime: str, batch: int) -> float | None:
        values = self.pooled(runtime, batch)
        return statistics.median(values) if values else None

    def round_medians(self, runtime: str, batch: int) -> list[float]:
        """The median of each round, in round order."""
        return [statistics.median(r) for r in self.samples.get((runtime, batch), []) if r]


def run_worker(ctx: Context, runtime: str, model: str, timing: Timing) -> dict:
    """One worker process: ``model`` is a registry reference (torch) or an ONNX file."""
    cmd = [sys.executable, "-m", "harness.onnx.worker", "--runtime", runtime, "--model", model,
           "--batch-sizes", ",".join(map(str, timing.batch_sizes)), "--shape", ",".join(map(str, timing.shape)),
           "--threads", str(timing.threads), "--iters", str(timing.iters), "--warmup", str(timing.warmup)]
    if runtime == "torch":
        cmd += ["--context", ctx.spec().to_json()]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(timing.threads))
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(f"benchmark worker for {runtime} failed: {last}")
    return json.loads(proc.stdout)


def measure(ctx: Context, files: dict[str, str], runtimes: tuple[str, ...], timing: Timing) -> Timings:
    """Interleaved rounds of one worker process per runtime; ``files[runtime]`` is what it runs."""
    out = Timings()
    for _ in range(timing.rounds):
        for runtime in runtimes:
            result = run_worker(ctx, runtime, files[runtime], timing)
            out.peak_rss_mb[runtime] = max(out.peak_rss_mb.get(runtime, 0.0), result["peak_rss_mb"])
            for b, values in result["latencies_ms"].items():
                out.samples.setdefault((runtime, int(b)), []).append(list(values))
                out.setups.setdefault((runtime, int(b)), set()).add(result.get("setup", {}).get(b, ""))
    return out
