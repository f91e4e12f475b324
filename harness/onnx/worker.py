"""One benchmark measurement in a fresh process: ``python -m harness.onnx.worker ...``.

Each runtime runs in its own process because ONNX Runtime's worker threads spin and slow PyTorch
work in the same process; a fresh process per round also keeps allocator state from leaking
between runtimes. Prints one JSON object: latencies in ms per batch size and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from harness.onnx.report import RUNTIMES

MIN_SECONDS = 0.25
"""Per batch size and round, keep timing past ``--iters`` until this long has passed: a model that
runs in 0.2 ms gets about a thousand samples (a stable median), a slow one just ``--iters``."""
MAX_ITERS = 2000


def _time(run, x, iters: int, min_seconds: float = 0.0) -> list[float]:
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < iters or (time.perf_counter() - began < min_seconds and len(times) < MAX_ITERS):
        start = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _measure(run, batch: int, shape: tuple[int, int, int], warmup: int, iters: int, prepare) -> list[float]:
    x = prepare((batch, *shape))
    _time(run, x, warmup)
    return _time(run, x, iters, MIN_SECONDS)


def _faster_layout(model, batch: int, shape: tuple[int, int, int], warmup: int) -> str:
    """``channels_last`` or ``contiguous``, whichever runs this model faster at ``batch`` (median of
    a few runs each): eager PyTorch's convolutions on CPU are often much faster in channels_last,
    and a fair comparison with ONNX Runtime gives eager its better layout."""
    import statistics

    import torch

    medians = {}
    for layout, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        m = model.to(memory_format=fmt)
        x = torch.randn(batch, *shape).contiguous(memory_format=fmt)
        with torch.inference_mode():
            _time(m, x, max(warmup, 2))
            medians[layout] = statistics.median(_time(m, x, 5))
    return min(medians, key=lambda k: medians[k])


def peak_rss_mb() -> float:
    """This process's peak resident memory. ``ru_maxrss`` survives ``execve`` from the (large)
    parent on Linux, so read ``VmHWM`` (reset by exec) where /proc exists."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runtime", required=True, choices=RUNTIMES)
    parser.add_argument("--model", required=True, help="registry ref (torch) or ONNX path")
    parser.add_argument("--batch-sizes", required=True)
    parser.add_argument("--shape", required=True, help="C,H,W")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--context", help="the caller's Context as JSON (torch runtime)")
    args = parser.parse_args(argv)
    c, h, w = (int(v) for v in args.shape.split(","))
    shape = (c, h, w)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    latencies: dict[str, list[float]] = {}
    result: dict[str, object] = {"runtime": args.runtime, "latencies_ms": latencies}
    if args.runtime == "torch":
        import torch

        from harness.context import Context, ContextSpec
        from harness.models.sources import resolve_model

        torch.set_num_threads(args.threads)
        with Context.from_spec(ContextSpec.from_json(args.context)) as ctx:
            model = resolve_model(ctx, args.model).build().eval()
        layouts = {str(b): _faster_layout(model, b, shape, args.warmup) for b in batches}
        result["setup"] = {b: f"inference_mode, {layout}, {args.threads} threads" for b, layout in layouts.items()}

        def run(x):
            with torch.inference_mode():
                model(x)

        def prepare(s):
            """Put the model in this batch size's faster layout; return an input in that layout."""
            fmt = torch.channels_last if layouts[str(s[0])] == "channels_last" else torch.contiguous_format
            model.to(memory_format=fmt)
            return torch.randn(*s).contiguous(memory_format=fmt)
    else:
        import numpy as np

        from harness.onnx.runtime import ort_session

        session = ort_session(args.model, threads=args.threads)

        def run(x):
            session.run(["logits"], {"input": x})

        def prepare(s):
            return np.random.default_rng(0).standard_normal(s, dtype=np.float32)

        result["providers"] = session.get_providers()
        result["setup"] = {str(b): f"CPUExecutionProvider, {args.threads} intra-op threads, no spinning"
                           for b in batches}
    for batch in batches:
        latencies[str(batch)] = _measure(run, batch, shape, args.warmup, args.iters, prepare)
    result["peak_rss_mb"] = peak_rss_mb()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
