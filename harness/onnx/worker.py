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


def _measure(run, batch: int, shape: tuple[int, int, int], warmup: int, iters: int, make) -> list[float]:
    x = make((batch, *shape))
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - start) * 1000)
    return times


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
    shape = tuple(int(v) for v in args.shape.split(","))
    batches = [int(b) for b in args.batch_sizes.split(",")]
    result: dict[str, object] = {"runtime": args.runtime, "latencies_ms": {}}
    if args.runtime == "torch":
        import torch

        from harness.context import Context, ContextSpec
        from harness.models.sources import resolve_model

        torch.set_num_threads(args.threads)
        with Context.from_spec(ContextSpec.from_json(args.context)) as ctx:
            model = resolve_model(ctx, args.model).build().eval()

        def run(x):
            with torch.inference_mode():
                model(x)

        def make(s):
            return torch.randn(*s)
    else:
        import numpy as np

        from harness.onnx.runtime import ort_session

        session = ort_session(args.model, threads=args.threads)

        def run(x):
            session.run(["logits"], {"input": x})

        def make(s):
            return np.random.default_rng(0).standard_normal(s, dtype=np.float32)

        result["providers"] = session.get_providers()
    for batch in batches:
        result["latencies_ms"][str(batch)] = _measure(run, batch, shape, args.warmup, args.iters, make)
    result["peak_rss_mb"] = peak_rss_mb()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
