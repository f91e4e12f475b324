"""ONNX Runtime against PyTorch eager, and INT8 against FP32, for ResNet-18 and MobileNetV3-Small.

For each architecture at 32x32 and 224x224, batch 1 and 32: median latency per runtime (same
thread count, one process per runtime per round, rounds interleaved) and the ratios ORT/eager and
INT8/FP32 from the same run. Speed does not depend on the weights, so the architectures are
benchmarked randomly initialised (INT8 calibrated on the synthetic task). INT8's accuracy change
needs trained weights: pass fine-tuned registry versions with ``--trained`` (e.g. models trained
with ``harness finetune resnet18 --task fashion-mnist``).

    python benchmarks/onnx_speed.py [--rounds 3] [--iters 10] [--trained fashion-mnist@1 ...]

Targets: ORT >= 1.3x eager at batch 1; INT8 >= 1.8x FP32 with at most 1 point of accuracy lost.
"""

from __future__ import annotations

import argparse
import json

from harness.context import Context
from harness.evaluate.int8_check import bench_int8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v3_small"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 224])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--trained", nargs="*", default=[], help="fine-tuned registry versions for INT8 accuracy")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with Context(quiet=True) as ctx:
        for model in args.models:
            for size in args.sizes:
                report, _ = bench_int8(ctx, model, batch_sizes=(1, 32), rounds=args.rounds, iters=args.iters,
                                       threads=args.threads, task_name="synthetic", samples=100, input_size=size,
                                       record=False)
                results.append({"model": model, "size": size, **report.as_dict()})
        trained = [bench_int8(ctx, ref, batch_sizes=(1, 32), rounds=args.rounds, iters=args.iters,
                              threads=args.threads, record=False)[0].as_dict() for ref in args.trained]
    if args.json:
        print(json.dumps({"architectures": results, "trained": trained}, indent=2))
        return
    print(f"threads: {results[0]['threads']}; medians of {args.rounds} rounds x {args.iters} iterations")
    print(f"{'model':20s} {'size':>4s} {'batch':>5s} {'eager ms':>9s} {'ORT ms':>8s} {'INT8 ms':>8s} "
          f"{'ORT/eager':>9s} {'INT8/FP32':>9s}")
    for r in results + trained:
        med = {(row["runtime"], row["batch"]): row["median_ms"] for row in r["rows"]}
        for b in (1, 32):
            print(f"{r['model']:20s} {r['input'][1]:4d} {b:5d} {med[('torch', b)]:9.2f} "
                  f"{med[('onnxruntime', b)]:8.2f} {med[('onnxruntime-int8', b)]:8.2f} "
                  f"{r['speedups'][f'ort_vs_eager_b{b}']:8.2f}x {r['speedups'][f'int8_vs_fp32_b{b}']:8.2f}x")
    for r in trained:
        acc = r["accuracy"]
        print(f"{r['model']}: accuracy FP32 {acc['onnxruntime']:.4f}, INT8 {acc['onnxruntime-int8']:.4f} "
              f"({acc['int8_change_points']:+.2f} points, {acc['samples']} test images)")


if __name__ == "__main__":
    main()
