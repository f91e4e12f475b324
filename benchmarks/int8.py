"""INT8 against FP32 ONNX Runtime for the main job's candidates, on this CPU.

The candidates are those of ``harness select --task fashion-mnist --budget quick`` (the README's
main job), trained through the harness API at that budget in ``--home``: the store's latest selection
of the task is reused when there is one (``--retrain`` runs select anyway); a fresh folder trains
them (35 min on a busy 2-core machine, December 2026). Per candidate, harness's
own INT8 check (:func:`harness.evaluate.int8_check.check_int8`): the FP32 ONNX export is quantised
(static QDQ, per-channel int8 weights, uint8 activations, calibrated on 512 training images outside
validation), both files are scored on the same validation and test images (all of them unless
``--samples``) and timed at batch 1 and 32 in ``--rounds`` interleaved rounds (one process per
runtime per round, same threads); the verdict applies the default policy: offered when at least
1.1x faster at both batch sizes and in every round, and at most 1 point lost on validation.

    nice -n 10 python benchmarks/int8.py [--home DIR] [--rounds 5] [--samples N] [--threads T] [--retrain] [--json]

Prints the CPU's int8-relevant instruction sets (AVX2, AVX-512 VNNI, AVX-VNNI, AMX) from
/proc/cpuinfo, whether the machine was busy while timing, and one row per candidate.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

from harness.context import Context
from harness.evaluate.int8 import Int8Verdict
from harness.evaluate.int8_check import check_int8
from harness.onnx.contention import busy_cores
from harness.onnx.export import export_model
from harness.select.config import SelectConfig
from harness.select.leaderboard import rows_from_store
from harness.select.run import select

INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu() -> str:
    """The CPU model and which int8-relevant instruction sets it has."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    have = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in INT8_FLAGS)
    return f"{model}, {os.cpu_count()} CPUs; {have}"


def row(candidate: str, v: Int8Verdict) -> str:
    s = {c.batch: c for c in v.speed}
    acc = {a.split: a for a in v.accuracy}

    def drop(split: str) -> str:
        a = acc.get(split)
        return "" if a is None else f"{-a.drop_points:+.2f} [{a.diff.low * 100:+.2f},{a.diff.high * 100:+.2f}]"

    return (f"{candidate:18s} {s[1].fp32_ms:8.3f} {s[1].int8_ms:8.3f} {s[1].ratio:5.2f}x {s[32].fp32_ms:8.2f} "
            f"{s[32].int8_ms:8.2f} {s[32].ratio:5.2f}x {v.size_ratio:5.2f}x {drop('val'):22s} {drop('test'):22s} "
            f"{'yes' if v.offered else 'no':4s} {v.quantised_text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=os.environ.get("HARNESS_HOME") or tempfile.mkdtemp(prefix="int8-bench-"))
    parser.add_argument("--task", default="fashion-mnist")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, help="validation and test images each (default: all)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--retrain", action="store_true", help="run select even when the store has a selection")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    verdicts: dict[str, Int8Verdict] = {}
    busy = [busy_cores(1.0)]
    with Context(home=args.home, quiet=True) as ctx:
        rows = [] if args.retrain else rows_from_store(ctx, args.task)  # the store's latest selection
        if not rows:
            rows = select(ctx, SelectConfig(task=args.task, budget="quick", robustness=False)).rows
        for r in rows:
            if r.model is None or r.status not in ("ok", "cached"):
                continue
            print(f"{r.candidate}: INT8 check of {r.model}", file=sys.stderr)
            with tempfile.TemporaryDirectory() as tmp:
                fp32 = export_model(ctx, r.model, tmp, register=False).info.path
                verdicts[r.candidate] = check_int8(ctx, r.model, fp32, Path(tmp) / "int8.onnx", samples=args.samples,
                                                   rounds=args.rounds, threads=args.threads)
    busy.append(busy_cores(1.0))
    if args.json:
        print(json.dumps({"cpu": cpu(), "busy_cores": busy, "verdicts": {k: v.as_dict() for k, v in verdicts.items()}},
                         indent=2))
        return
    threads = next(iter(verdicts.values())).threads if verdicts else 0
    print(f"{datetime.date.today()}; {cpu()}")
    print(f"store {args.home}; {threads} threads; medians of {args.rounds} interleaved rounds; other processes used "
          f"{busy[0]} cores before and {busy[1]} after")
    print(f"{'candidate':18s} {'FP32 b1':>8s} {'INT8 b1':>8s} {'b1':>6s} {'FP32 b32':>8s} {'INT8 b32':>8s} {'b32':>6s} "
          f"{'size':>6s} {'val change pts [95%]':22s} {'test change pts [95%]':22s} {'off.':4s} quantised")
    for candidate, v in verdicts.items():
        print(row(candidate, v))
    for candidate, v in verdicts.items():
        n = ", ".join(f"{a.split} {a.diff.n_images}" for a in v.accuracy)
        print(f"{candidate}: {v.summary()} (images: {n})" + (f"; timing: {v.timing}" if v.timing else ""))


if __name__ == "__main__":
    main()
