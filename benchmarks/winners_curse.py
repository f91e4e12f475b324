"""The winner's curse: how optimistic is a winner picked on the test split, against one picked on validation?

Fine-tunes every candidate with every seed on one task (the same recipe for all; every run stores
its per-image predictions on validation and test), then, for each seed and each of ``--splits``
random halvings of the test split into A and B:

- *picked on test* (what select did before): the winner is the best on half A, and A's score is
  what would be reported; its **optimism** is score(A) - score(B), B being images nobody chose on;
- *picked on validation* (what select does now): the winner is the best on validation; its
  reported score on A is untouched by the choice, so its optimism should be ~0;
- each pick's **regret** on B: the best candidate's score on B minus the pick's.

Prints, per seed and pooled, the mean optimism and regret of both rules in points (x100) with a 95%
interval from a two-stage bootstrap (seeds, then halvings), and the difference of the two optimisms.

    python benchmarks/winners_curse.py [--task fashion-mnist] [--seeds 3] [--candidates A,B,...]
        [--train-limit 2000] [--epochs 2] [--splits 200] [--json]

Uses ``HARNESS_HOME`` (a fresh temporary store unless set); runs already in it are reused (same
fingerprint). Needs real Fashion-MNIST for the default task (Debian's dataset-fashion-mnist).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

CANDIDATES = ("cifar_convnet_xs", "cifar_convnet_s", "cifar_convnet_m", "cifar_resnet8", "cifar_resnet20",
              "cifar_resnet56", "timm_test_resnet", "timm_test_convnext", "timm_test_efficientnet",
              "timm_test_byobnet", "timm_test_nfnet", "timm_test_vit", "timm_test_convnext2",
              "timm_test_efficientnet_ln")
"""Small nets of different families (timm's are its tiny test models): 14 tried, those that train kept."""


def train_all(task: str, candidates: list[str], seeds: int, recipe: dict[str, Any]) -> dict[str, dict[int, Any]]:
    """{candidate: {seed: predictions}}: one fine-tune per candidate and seed (reused when in the store)."""
    from harness.context import Context
    from harness.predictions.stored import load_predictions
    from harness.select.cache import row_fingerprint, weights_identity
    from harness.train.finetune import finetune
    from harness.train.recipe import recipe_for
    from registry import HarnessError, first_line, keys

    out: dict[str, dict[int, Any]] = {}
    with Context(quiet=True) as ctx:
        base = recipe_for(ctx.catalogue.task(task), "quick", **recipe)
        for name in candidates:
            runs = {}
            for seed in range(seeds):
                r = base.replace(seed=seed)
                fp = row_fingerprint(name, weights_identity(ctx, name), task, r.as_dict(), {}, "bench", seed)
                version = ctx.store.find_by_tag(keys.TAG_FINGERPRINT, fp, None)
                began = time.perf_counter()
                if version is None:
                    try:
                        version = finetune(ctx, name, task, r).version
                    except HarnessError as exc:  # a candidate that does not train is left out, said
                        print(f"{name} seed {seed}: left out ({first_line(exc)})", file=sys.stderr)
                        break
                    version = ctx.store.set_tags(version.ref, {keys.TAG_FINGERPRINT: fp})
                runs[seed] = load_predictions(version)
                print(f"{name} seed {seed}: val {version.metrics[keys.VAL]['accuracy']:.4f} test "
                      f"{version.metrics[keys.TEST]['accuracy']:.4f} ({time.perf_counter() - began:.0f}s)",
                      file=sys.stderr)
            else:
                out[name] = runs
    return out


def draws(preds: dict[str, dict[int, Any]], seeds: int, splits: int) -> dict[str, np.ndarray]:
    """Per (seed, halving): optimism and regret of both rules, as arrays of shape (seeds, splits)."""
    names = list(preds)
    result = {k: np.zeros((seeds, splits)) for k in ("opt_test", "opt_val", "reg_test", "reg_val")}
    rng = np.random.default_rng(0)
    for s in range(seeds):
        test_right = np.stack([preds[n][s]["test"].logits.argmax(1) == preds[n][s]["test"].labels for n in names])
        val_acc = np.array([(preds[n][s]["val"].logits.argmax(1) == preds[n][s]["val"].labels).mean() for n in names])
        by_val = int(np.argmax(val_acc))
        n = test_right.shape[1]
        for k in range(splits):
            half = rng.permutation(n) < n // 2
            acc_a, acc_b = test_right[:, half].mean(1), test_right[:, ~half].mean(1)
            by_test = int(np.argmax(acc_a))
            result["opt_test"][s, k] = acc_a[by_test] - acc_b[by_test]
            result["opt_val"][s, k] = acc_a[by_val] - acc_b[by_val]
            result["reg_test"][s, k] = acc_b.max() - acc_b[by_test]
            result["reg_val"][s, k] = acc_b.max() - acc_b[by_val]
    return result


def interval(values: np.ndarray, resamples: int = 2000) -> tuple[float, float, float]:
    """Mean and 95% interval of a (seeds, splits) array: seeds resampled, then halvings within them."""
    rng = np.random.default_rng(1)
    seeds, splits = values.shape
    means = []
    for _ in range(resamples):
        rows = values[rng.integers(0, seeds, seeds)]
        cols = rng.integers(0, splits, (seeds, splits))
        means.append(np.take_along_axis(rows, cols, 1).mean())
    low, high = np.quantile(means, [0.025, 0.975])
    return float(values.mean()), float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="fashion-mnist")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-limit", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--splits", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if "HARNESS_HOME" not in os.environ:
        os.environ["HARNESS_HOME"] = tempfile.mkdtemp(prefix="harness-curse-")
    began = time.perf_counter()
    preds = train_all(args.task, args.candidates.split(","), args.seeds,
                      {"train_limit": args.train_limit, "epochs": args.epochs})
    candidates = list(preds)
    found = draws(preds, args.seeds, args.splits)
    first = preds[candidates[0]][0]
    table = {name: interval(values) for name, values in found.items()}
    table["opt_gap"] = interval(found["opt_test"] - found["opt_val"])
    if args.json:
        print(json.dumps({k: dict(zip(("mean", "low", "high"), v, strict=True)) for k, v in table.items()}))
        return
    print(f"{args.task}: {len(candidates)} candidates x {args.seeds} seeds ({args.epochs} epochs on "
          f"{args.train_limit} images); validation {first['val'].evalset.n:,} images, test halves of "
          f"{first['test'].evalset.n // 2:,}; {args.splits} halvings per seed; {time.perf_counter() - began:.0f}s")
    labels = {"opt_test": "optimism, winner picked on test half A",
              "opt_val": "optimism, winner picked on validation",
              "opt_gap": "difference (test-picked - validation-picked)",
              "reg_test": "regret on half B, picked on test half A",
              "reg_val": "regret on half B, picked on validation"}
    for key, text in labels.items():
        mean, low, high = table[key]
        print(f"  {text:48} {100 * mean:+6.2f} points  [{100 * low:+.2f}, {100 * high:+.2f}]")
    for s in range(args.seeds):
        print(f"  seed {s}: optimism test-picked {100 * found['opt_test'][s].mean():+.2f}, validation-picked "
              f"{100 * found['opt_val'][s].mean():+.2f}; regret {100 * found['reg_test'][s].mean():.2f} / "
              f"{100 * found['reg_val'][s].mean():.2f} points")


if __name__ == "__main__":
    main()
