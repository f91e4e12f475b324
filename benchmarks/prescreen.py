"""Which prescreen to trust, beyond the noise: every prescreen's ranking of 18 candidates against
fine-tuned truth on 5 targets, each truth the mean of 3 seeds trained to convergence.

Candidates (:data:`ZOO`, built like ``harness zoo build --spec``): ``cifar_convnet_xs``,
``cifar_convnet_s``, ``cifar_resnet8`` and ``cifar_resnet20`` (two families, two sizes) pretrained
supervised on Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover, dress, coat), as autoencoders
on those images, contrastively (SimCLR: resnet8, convnet_s) on them, and supervised on the
generated ``synthetic`` stripes, plus the same four from random initialisation.

Targets (:data:`TARGETS`; none uses a class any zoo model was pretrained on, checked before any
work): Fashion-MNIST classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) at 10 and at 100
labels per class; classes 5, 7 and 9 (the footwear) at 25; and scikit-learn's bundled handwritten
digits (``sklearn.datasets.load_digits``: 1,797 8x8 scans by 43 writers, the test part of the UCI
"Optical Recognition of Handwritten Digits" set, shipped inside scikit-learn's wheel, so offline)
at 10 and at 50 per class. The digits are written once as PNG folders (``train/<digit>/``: half of
each class, seeded; ``test/<digit>/``: the rest) under ``$HARNESS_HOME/benchmark-data/digits`` and
read as a ``--data`` task, views and all. Every target keeps :data:`VAL_PER_CLASS` more labelled
images per class for validation.

Truth: each candidate fine-tuned end to end (the task's quick recipe otherwise: its learning rate,
augmentation, random crops rather than mirroring for the digits; backbone at 0.1x for pretrained
starts) on each of 3 seeded label subsets (``seed=S`` in the view draws another subset), for up to
:data:`STEPS` SGD steps (between 15 and 100 epochs) with early stopping on validation accuracy
(patience a fifth of the epochs, at least 8; the best epoch's weights kept); truth is the mean
test accuracy over the seeds (whole test split of the target's classes). Fine-tunes are cached by
select's fingerprint, so a rerun continues where an interrupted one stopped.

Prescreens: features of every candidate extracted once per target on the seed-0 subset's labelled
images (what ``select --prescreen`` sees), then every method scored on them; cost = extraction +
scoring seconds, over all candidates. ``sfda (standardised)`` is SFDA on features rescaled to
unit mean variance: the check behind keeping SFDA at the features' own scale. Free orders on the
same candidates: parameter count (bigger first), pretraining score (source validation accuracy, 0
from scratch; none for autoencoder and contrastive sources, so it covers 12 of 18), a seeded random
order.

    HARNESS_HOME=$(mktemp -d) python benchmarks/prescreen.py [--targets 1,2] [--format json]
    HARNESS_HOME=$(mktemp -d) python benchmarks/prescreen.py --smoke     # minutes: 6 candidates, 2 targets

Needs real Fashion-MNIST (Debian package dataset-fashion-mnist) and scikit-learn (the [dev] extra).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prescreen_stats import Pooled, Ranking, on_common, pooled, pooled_difference, seed_stability

if TYPE_CHECKING:
    from harness.context import Context

SMALL = ("cifar_convnet_xs", "cifar_resnet8", "cifar_convnet_s", "cifar_resnet20")
SOURCE = "fashion-mnist:classes=0-4"
ZOO: dict[str, Any] = {
    "name": "prescreen-bench", "epochs": 2, "batch_size": 64, "lr": 0.05, "train_limit": 6000,
    "groups": [
        {"backbones": list(SMALL), "method": "supervised", "source": SOURCE},
        {"backbones": list(SMALL), "method": "autoencoder", "source": SOURCE},
        {"backbones": ["cifar_resnet8", "cifar_convnet_s"], "method": "contrastive", "source": SOURCE},
        {"backbones": list(SMALL), "method": "supervised", "source": "synthetic"},
    ],
}
SMOKE_ZOO: dict[str, Any] = {
    "name": "prescreen-smoke", "epochs": 1, "batch_size": 32, "lr": 0.05, "train_limit": 256,
    "groups": [{"backbones": ["cifar_convnet_xs", "cifar_resnet8"], "method": "supervised", "source": SOURCE},
               {"backbones": ["cifar_convnet_xs", "cifar_resnet8"], "method": "autoencoder", "source": SOURCE}],
}
VAL_PER_CLASS = 20
STEPS = 400
DIGITS = "digits"  # the base of the digits targets: a folder written by write_digits


@dataclass(frozen=True)
class Target:
    """One target: a base task, the classes kept (a view selector), the labels per class, and the
    augmentation when the task's quick default does not fit (mirrored digits are other symbols)."""

    name: str
    base: str
    classes: str | None
    labels: int
    augmentation: tuple[str, ...] | None = None

    def task(self, seed: int, val_per_class: int) -> str:
        """The view text of one seed's label subset (plus the validation images)."""
        parts = ([f"classes={self.classes}"] if self.classes else []) + [f"per_class={self.labels + val_per_class}"]
        return f"{self.base}:{','.join(parts + ([f'seed={seed}'] if seed else []))}"


TARGETS = (Target("fm 5-9, 10/class", "fashion-mnist", "5-9", 10),
           Target("fm 5-9, 100/class", "fashion-mnist", "5-9", 100),
           Target("fm footwear 5+7+9, 25/class", "fashion-mnist", "5+7+9", 25),
           Target("digits, 10/class", DIGITS, None, 10, ("random_crop",)),
           Target("digits, 50/class", DIGITS, None, 50, ("random_crop",)))
SMOKE_TARGETS = (Target("fm 5-9, 5/class", "fashion-mnist", "5-9", 5),
                 Target("digits, 5/class", DIGITS, None, 5, ("random_crop",)))


@dataclass(frozen=True)
class Mode:
    """How much work: the zoo, the targets, seeds and the truth's training budget."""

    name: str
    zoo: dict[str, Any]
    targets: tuple[Target, ...]
    seeds: int = 3
    steps: int = STEPS
    min_epochs: int = 15
    max_epochs: int = 100
    val_per_class: int = VAL_PER_CLASS
    test_limit: int | None = None
    scratch: tuple[str, ...] = SMALL

    def schedule(self, n_train: int, batch_size: int) -> tuple[int, int, int]:
        """(batch size, epochs, patience) for ``n_train`` training images: small sets get small batches."""
        batch = min(batch_size, max(4, n_train // 4))
        epochs = min(self.max_epochs, max(self.min_epochs, math.ceil(self.steps / math.ceil(n_train / batch))))
        return batch, epochs, max(min(8, epochs), epochs // 5)


FULL = Mode("full", ZOO, TARGETS)
SMOKE = Mode("smoke", SMOKE_ZOO, SMOKE_TARGETS, seeds=2, steps=8, min_epochs=2, max_epochs=3, val_per_class=5,
             test_limit=300, scratch=("cifar_convnet_xs", "cifar_resnet8"))


@dataclass
class TargetResult:
    """What one target gave: per-seed test accuracy per candidate, the prescreens' and free orders'
    scores, their costs, and the seconds the truth took."""

    target: Target
    per_seed: list[dict[str, float]] = field(default_factory=list)
    orders: dict[str, dict[str, float]] = field(default_factory=dict)
    cost_s: dict[str, float] = field(default_factory=dict)
    train_s: float = 0.0

    @property
    def truth(self) -> dict[str, float]:
        """Mean test accuracy over the seeds, for candidates every seed trained."""
        keys = set.intersection(*(set(s) for s in self.per_seed)) if self.per_seed else set()
        return {k: float(np.mean([s[k] for s in self.per_seed])) for k in sorted(keys)}


# -- data -------------------------------------------------------------------------------------------------


def write_digits(root: Path, seed: int = 0) -> Path:
    """scikit-learn's digits as ``root/train/<d>/*.png`` and ``root/test/<d>/*.png`` (half of each
    class to train, seeded), once; 8x8 values 0-16 scaled to 0-255."""
    from PIL import Image
    from sklearn.datasets import load_digits

    done = root / "DONE"
    if done.is_file():
        return root
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for label in range(10):
        index = rng.permutation(np.flatnonzero(digits.target == label))
        for split, part in (("train", index[: len(index) // 2]), ("test", index[len(index) // 2:])):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            for i in part:
                pixels = np.round(digits.images[i] * 255 / 16).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    done.write_text(f"sklearn.datasets.load_digits, split seed {seed}\n")
    return root


def resolve_target(ctx: Context, target: Target, seed: int, val_per_class: int) -> str:
    """The harness task name of one seed's view of ``target`` (the digits folder made first)."""
    from harness.data.datatask import resolve
    from harness.data.sources import DataSpec

    text = target.task(seed, val_per_class)
    if target.base == DIGITS:
        folder = write_digits(ctx.store.home / "benchmark-data" / "digits")
        return str(resolve(ctx, None, DataSpec(str(folder) + text[len(DIGITS):])))
    return str(resolve(ctx, text, None))


def check_disjoint(ctx: Context, zoo: Mapping[str, Any], targets: tuple[Target, ...]) -> None:
    """Refuse a target that shares a class with a zoo model's pretraining source (same base data)."""
    from harness.data.views import View, chosen_classes, split_view
    from registry import UsageError

    def classes(base: str, view: View | None) -> set[int]:
        names = tuple(ctx.catalogue.datasets.get(base).class_names or ())
        return set(chosen_classes(view or View(), names)) if names else {-1}

    used: dict[str, set[int]] = {}
    for group in zoo["groups"]:
        base, view = split_view(group["source"])
        used.setdefault(base, set()).update(classes(base, view))
    for t in targets:
        if t.base in used:
            overlap = classes(t.base, View(tuple(t.classes.split("+")) if t.classes else None)) & used[t.base]
            if overlap:
                raise UsageError(f"target {t.name!r} uses class(es) {sorted(overlap)} of {t.base}, which zoo "
                                 f"{zoo['name']!r} pretrained on")


# -- truth ------------------------------------------------------------------------------------------------


def fine_tune(ctx: Context, mode: Mode, ref: str, task_name: str, seed: int, target: Target) -> tuple[float, float]:
    """(test accuracy, training seconds) of ``ref`` fine-tuned on one seed's subset, reusing a
    cached run with the same fingerprint (its seconds are the ones stored when it trained)."""
    from harness.environment import library_versions, select_device
    from harness.select.cache import cached_version, dataset_hash, row_fingerprint, weights_identity
    from harness.train.finetune import finetune
    from harness.train.recipe import recipe_for
    from registry import keys

    task = ctx.catalogue.task(task_name)
    classes = ctx.catalogue.datasets.get(task.dataset).num_classes or 2
    base = recipe_for(task, "quick", seed=seed)
    batch, epochs, patience = mode.schedule(target.labels * classes, base.batch_size)
    recipe = base.replace(strategy="full", batch_size=batch, epochs=epochs, patience=patience, train_limit=None,
                          val_fraction=mode.val_per_class / (target.labels + mode.val_per_class) + 1e-9,
                          val_limit=None, test_limit=mode.test_limit)
    if target.augmentation is not None:
        recipe = recipe.replace(augmentation=target.augmentation)
    size = recipe.input_size or task.protocol.input_size
    fp = row_fingerprint(ref, weights_identity(ctx, ref), dataset_hash(ctx, task.dataset, size), recipe.as_dict(),
                         library_versions(), select_device(ctx.device).type, seed)
    version = cached_version(ctx, task.name, fp)
    if version is None:
        quiet = ctx.replace(progress=ctx.progress.child(lines=False, prefix=f"{ref} "))
        version = finetune(quiet, ref, task.name, recipe).version
        ctx.store.set_tags(version.ref, {keys.TAG_FINGERPRINT: fp})
    return float(version.metrics[keys.TEST]["accuracy"]), float(version.metrics.get(keys.TRAIN, {}).get("seconds", 0))


def truth(ctx: Context, mode: Mode, result: TargetResult, refs: list[str]) -> None:
    """Every candidate on every seed's subset of the target: ``result.per_seed`` and ``train_s``."""
    from registry import first_line

    t = result.target
    for seed in range(mode.seeds):
        task = resolve_target(ctx, t, seed, mode.val_per_class)
        scores: dict[str, float] = {}
        for i, ref in enumerate(refs, 1):
            try:
                scores[ref], seconds = fine_tune(ctx, mode, ref, task, seed, t)
                result.train_s += seconds
                ctx.progress.info(f"{t.name} seed {seed} [{i}/{len(refs)}] {ref}: test {scores[ref]:.4f} "
                                  f"({seconds:.0f}s)")
            except Exception as exc:  # one candidate's failure leaves it out of this target, said
                ctx.progress.warn(f"{t.name} seed {seed} {ref}: failed: {first_line(exc)}")
        result.per_seed.append(scores)


# -- prescreens -------------------------------------------------------------------------------------------


def standardised_sfda(features: np.ndarray, labels: np.ndarray) -> float:
    """SFDA on features rescaled to unit mean variance (the scale-free variant we did not adopt)."""
    from harness.select.transferability import sfda

    scale = math.sqrt(float(features.var(0).mean())) or 1.0
    return sfda(features / scale, labels)


def prescreens(ctx: Context, mode: Mode, result: TargetResult, refs: list[str]) -> None:
    """Every method's scores and cost, and the free orders, into ``result``."""
    from harness.select.config import PRESCREENS
    from harness.select.prescreen import candidate_features, prescreen_images, pretraining_score
    from harness.select.transferability import finish, measure

    task = ctx.catalogue.task(resolve_target(ctx, result.target, 0, mode.val_per_class))
    size = task.protocol.input_size
    images = prescreen_images(ctx, task, size, 0)
    labels = images.labels.numpy()
    methods = {m: (lambda f, y, m=m: measure(m, f, y)) for m in PRESCREENS} | {"sfda (standardised)": standardised_sfda}
    measured: dict[str, dict[str, Any]] = {m: {} for m in methods}
    cost = dict.fromkeys(methods, 0.0)
    params: dict[str, float] = {}
    for found in candidate_features(ctx, refs, images, size, 0):
        if found.features is None:
            ctx.progress.warn(f"{result.target.name}: no features for {found.ref}: {found.error}")
            continue
        params[found.ref] = float(found.params or 0)
        for name, method in methods.items():
            began = time.perf_counter()
            measured[name][found.ref] = method(found.features, labels)
            cost[name] += found.seconds + time.perf_counter() - began
    for name in methods:
        result.orders[name] = finish(name, measured[name])
        result.cost_s[name] = round(cost[name], 2)
    result.orders["parameter count"] = params
    result.orders["pretraining score"] = {r: v for r in refs if (v := pretraining_score(ctx, r)) is not None}
    rng = np.random.default_rng(zlib.crc32(result.target.name.encode()))
    result.orders["random order"] = dict(zip(refs, rng.permutation(len(refs)).astype(float), strict=True))


# -- tables -----------------------------------------------------------------------------------------------

FREE = ("parameter count", "pretraining score", "random order")


def target_rows(result: TargetResult) -> list[dict[str, Any]]:
    """One row per order on one target: n, taus with p-values, regret, cost."""
    from harness.select.rankcheck import agreement

    truth_ = result.truth
    rows = []
    for name, scores in result.orders.items():
        a = agreement(name, scores, truth_)
        rows.append({"target": result.target.name, "order": name, "n": a.n, "kendall": a.kendall,
                     "kendall_p": a.p_value, "weighted": a.weighted, "weighted_p": a.weighted_p,
                     "null95": a.null95 if a.kendall is not None else None,  # a constant order has no null
                     "regret": a.regret, "cost_s": result.cost_s.get(name, 0.0),
                     "cost_share": round(result.cost_s.get(name, 0.0) / max(result.train_s / len(result.per_seed),
                                                                           1e-9), 3) if name not in FREE else 0.0})
    return rows


def truth_row(result: TargetResult) -> dict[str, Any]:
    """How solid one target's truth is: candidates, the best, the spread, seed-to-seed agreement."""
    t = result.truth
    best = max(t, key=t.get) if t else None
    sd = [float(np.std([s[k] for s in result.per_seed], ddof=1)) for k in t] if len(result.per_seed) > 1 else []
    return {"target": result.target.name, "candidates": len(t), "seeds": len(result.per_seed), "best": best,
            "best_accuracy": round(t[best], 4) if best else None,
            "spread": round(max(t.values()) - min(t.values()), 4) if t else None,
            "seed_sd_median": round(float(np.median(sd)), 4) if sd else None,
            "seed_stability_kendall": seed_stability(result.per_seed), "train_s": round(result.train_s, 1)}


def pooled_rows(results: list[TargetResult]) -> tuple[list[Pooled], list[dict[str, Any]]]:
    """Each order pooled over the targets, and each prescreen minus the best free order (by pooled
    weighted tau, random excluded) on the candidates both cover, with its interval."""
    names = list(results[0].orders)
    rankings = {n: [Ranking.of(r.target.name, r.orders[n], r.truth) for r in results] for n in names}
    table = [pooled(n, rankings[n]) for n in names]
    free = [p for p in table if p.order in FREE[:2] and p.weighted is not None]
    if not free:
        return table, []
    best = max(free, key=lambda p: p.weighted or -1.0).order
    diffs = []
    for name in names:
        if name in FREE:
            continue
        common = [on_common(r.target.name, {name: r.orders[name], best: r.orders[best]}, r.truth) for r in results]
        d = pooled_difference(name, [c[name] for c in common], best, [c[best] for c in common])
        if d is not None:
            diffs.append(d.as_dict())
    return table, diffs


PAIRS = (("sfda (standardised)", "sfda"),)
"""Variants compared head to head: does standardising SFDA's features rank better than its own scale?"""


def paired_rows(results: list[TargetResult]) -> list[dict[str, Any]]:
    """Each pair of :data:`PAIRS` pooled over the targets: weighted tau of the first minus the second,
    with the same interval as the comparison with the free orders."""
    rows = []
    for first, second in PAIRS:
        if not all(first in r.orders and second in r.orders for r in results):
            continue
        common = [on_common(r.target.name, {first: r.orders[first], second: r.orders[second]}, r.truth)
                  for r in results]
        d = pooled_difference(first, [c[first] for c in common], second, [c[second] for c in common])
        if d is not None:
            rows.append(d.as_dict())
    return rows


def render(report: dict[str, Any]) -> str:
    """The tables as text (stdout)."""
    out = ["truth per target (mean test accuracy over seeds; stability: mean Kendall tau between seeds' orders)"]
    for t in report["truth"]:
        out.append(f"  {t['target']:30} {t['candidates']:>2} candidates x {t['seeds']} seeds, best {t['best']} "
                   f"{t['best_accuracy']}, spread {t['spread']}, seed s.d. (median) {t['seed_sd_median']}, "
                   f"stability {t['seed_stability_kendall']}, {t['train_s']:.0f}s")
    head = f"  {'order':22} {'n':>3} {'tau':>6} {'p':>6} {'w-tau':>6} {'p':>6} {'null95':>6} {'regret':>6} {'cost':>12}"
    for target in dict.fromkeys(r["target"] for r in report["per_target"]):
        out += ["", f"{target}", head]
        for r in (r for r in report["per_target"] if r["target"] == target):
            cost = "free" if r["order"] in FREE else f"{r['cost_s']:.1f}s {r['cost_share']:.0%}"
            out.append(f"  {r['order']:22} {r['n']:>3} {_f(r['kendall'])} {_f(r['kendall_p'], 3)} {_f(r['weighted'])} "
                       f"{_f(r['weighted_p'], 3)} {_f(r['null95'])} {_f(r['regret'], 3)} {cost:>12}")
    out += ["", f"pooled over {len(report['truth'])} targets (means; p: joint permutation of every target's "
                "candidates)", f"  {'order':22} {'n':>3} {'tau':>6} {'w-tau':>6} {'p':>6} {'regret':>6}"]
    for p in report["pooled"]:
        out.append(f"  {p['order']:22} {p['candidates']:>3} {_f(p['kendall'])} {_f(p['weighted'])} "
                   f"{_f(p['weighted_p'], 3)} {_f(p['regret'], 3)}")
    for d in [*report["vs_best_free"], *report.get("pairs", [])]:
        out.append(f"  {d['first']} minus {d['second']}: weighted tau {d['diff']:+.2f} [{d['low']:+.2f}, "
                   f"{d['high']:+.2f}]" + (" (beyond the noise)" if d["beyond_noise"] else " (within the noise)"))
    return "\n".join(out)


def _f(value: float | None, digits: int = 2) -> str:
    return f"{'n/a':>6}" if value is None else f"{value:>6.{digits}f}"


def run(ctx: Context, mode: Mode) -> dict[str, Any]:
    """Build the zoo, then per target the truth and the prescreens; the report as data."""
    from harness.jobs import zoo

    check_disjoint(ctx, mode.zoo, mode.targets)
    began = time.perf_counter()
    zoo.build(ctx, mode.zoo)
    refs = [*zoo.members(ctx, mode.zoo["name"]), *mode.scratch]
    ctx.progress.info(f"zoo {mode.zoo['name']}: ready in {time.perf_counter() - began:.0f}s; {len(refs)} candidates")
    results = []
    for target in mode.targets:
        result = TargetResult(target)
        truth(ctx, mode, result, refs)
        prescreens(ctx, mode, result, refs)
        results.append(result)
    table, diffs = pooled_rows(results)
    return {"mode": mode.name, "seeds": mode.seeds, "candidates": refs,
            "truth": [truth_row(r) for r in results], "per_target": [row for r in results for row in target_rows(r)],
            "pooled": [p.as_dict() for p in table], "vs_best_free": diffs, "pairs": paired_rows(results),
            "scores": {r.target.name: r.orders for r in results},
            "per_seed": {r.target.name: r.per_seed for r in results},
            "seconds": round(time.perf_counter() - began, 1)}


def pick_targets(targets: tuple[Target, ...], text: str) -> tuple[Target, ...]:
    """The targets numbered in ``text`` (1-based, comma-separated); ValueError names the choices."""
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        numbers = [0]
    if not numbers or any(not 1 <= n <= len(targets) for n in numbers):
        raise ValueError(f"--targets: numbers 1-{len(targets)}, comma-separated: "
                         + "; ".join(f"{i} {t.name}" for i, t in enumerate(targets, 1)))
    return tuple(targets[n - 1] for n in dict.fromkeys(numbers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run (minutes) that exercises every part")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--seeds", type=int, help="seeds per target (default: 3, smoke 2)")
    parser.add_argument("--targets", help="only these targets, by number (1-5, comma-separated): a long run in "
                                          "parts; fine-tunes are cached, so the whole run afterwards reuses them")
    args = parser.parse_args()
    mode = SMOKE if args.smoke else FULL
    if args.seeds:
        mode = replace(mode, seeds=args.seeds)
    if args.targets:
        try:
            mode = replace(mode, targets=pick_targets(mode.targets, args.targets))
        except ValueError as exc:
            parser.error(str(exc))

    from harness.context import Context

    with Context() as ctx:
        report = run(ctx, mode)
    print(json.dumps(report, indent=1) if args.format == "json" else render(report))


if __name__ == "__main__":
    main()
