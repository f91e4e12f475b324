"""``harness study transfer``: what pretraining buys on a task, at each label budget.

For every label budget B and seed S the task's view ``per_class=B+V,seed=S`` is made; V images per
class of it (``val_per_class``) are the validation set and B the training labels, so every start of
that seed trains on the same B images and is judged on the same V (never on test). Each start is
trained in two arms (see :mod:`harness.select.study_stats`):

- **equal steps**: the budget's recipe and epochs, every strategy asked for (as before);
- **converged**: until validation stops improving (:class:`Converge`: a step budget scaled to the
  subset, patience a quarter of it), once per recipe of a small grid (backbone learning-rate
  multiplier x strategy), the recipe chosen on validation per seed.

Each pretrained start's gain over scratch of the same backbone is paired by seed and given with a 95%
t interval; each budget gets a one-line verdict; pretraining quality is related to the gain only
among starts of the same source and method. Runs are cached by fingerprint like select's rows (the
recipe is part of it, so a changed recipe never reuses a row), so a study grows by what is new.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.output import counted
from harness.select.study_stats import (
    CHOSEN,
    CONVERGED,
    EQUAL,
    QUALITY,
    Correlation,
    Row,
    StartInfo,
    StudyRun,
    Verdict,
    correlate,
    summarise,
    verdicts,
)
from registry import UsageError, keys

if TYPE_CHECKING:
    from harness.context import Context
    from harness.select.halving import Job, Trainer
    from harness.train.recipe import Recipe

__all__ = ["CHOSEN", "CONVERGED", "EQUAL", "QUALITY", "Converge", "StudyConfig", "StudyResult", "StudyRun",
           "plot_curves", "run_study"]

TAG_STUDY = "study"
GRID_STRATEGIES = ("full", "linear")
"""The strategies of the converged arm's recipe grid (linear only for pretrained starts: a probe on a
random frozen backbone is not a baseline)."""


@dataclass(frozen=True)
class Converge:
    """How long "trained to convergence" is, per subset: ``steps`` SGD steps (scaled to the subset:
    ``ceil(steps / steps per epoch)`` epochs), at least ``min_epochs`` passes over a large subset and
    at most ``max_epochs``; early stopping after ``patience`` epochs without a better validation score
    (default: a quarter of the epochs, at least 3). The best validation epoch's weights are kept."""

    steps: int = 600
    min_epochs: int = 10
    max_epochs: int = 150
    patience: int | None = None

    def budget(self, n_train: int, batch_size: int) -> tuple[int, int]:
        """(epochs, patience) for ``n_train`` training images in batches of ``batch_size``."""
        per_epoch = max(1, n_train // batch_size)  # training batches drop the last partial one
        epochs = min(self.max_epochs, max(self.min_epochs, math.ceil(self.steps / per_epoch)))
        return epochs, self.patience or max(3, math.ceil(epochs / 4))


@dataclass(frozen=True)
class StudyConfig:
    task: str
    starts: tuple[str, ...]
    labels: tuple[int | None, ...] = (10, 50, None)  # training images per class; None: all
    seeds: int = 3
    strategies: tuple[str, ...] = ("full",)  # of the equal-steps arm
    budget: str = "quick"
    recipe: dict[str, Any] = field(default_factory=dict)
    use_cache: bool = True
    converge: Converge | None = field(default_factory=Converge)  # None: the equal-steps arm only
    lr_mults: tuple[float, ...] = (0.1, 1.0)  # backbone learning-rate multipliers of the recipe grid
    val_per_class: int = 50  # validation images per class, outside the training labels

    def __post_init__(self) -> None:
        from harness.train.recipe import STRATEGIES

        if self.seeds < 1:
            raise UsageError("{param} must be at least 1", param="seeds")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise UsageError(f"{{param}} {bad[0]!r}: use {', '.join(STRATEGIES)}", param="strategies")
        if any(b is not None and b < 1 for b in self.labels):
            raise UsageError("{param}: label budgets are whole numbers of at least 1, or 'all'", param="labels")
        if not self.lr_mults or any(not (math.isfinite(m) and m > 0) for m in self.lr_mults):
            raise UsageError("{param}: give positive numbers, e.g. 0.1,1", param="lr_mults")
        if self.val_per_class < 1:
            raise UsageError("{param} must be at least 1", param="val_per_class")


@dataclass
class StudyResult:
    task: str
    primary: str
    runs: list[StudyRun]
    rows: list[Row]
    verdicts: list[Verdict]
    correlation: list[Correlation]
    notes: list[str]
    protocol: dict[str, Any]
    seconds: float

    @property
    def table(self) -> list[dict[str, Any]]:
        return [row.as_dict() for row in self.rows]

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "primary_metric": self.primary, "protocol": self.protocol,
                "verdicts": [v.as_dict() for v in self.verdicts], "table": self.table,
                "correlation": [c.as_dict() for c in self.correlation], "notes": self.notes,
                "runs": [{**dataclasses.asdict(r), "recipe": r.recipe} for r in self.runs],
                "seconds": round(self.seconds, 1)}


SCORES = {"supervised": ("val_accuracy", 1), "contrastive": ("val_pair_accuracy", 1),
          "autoencoder": ("val_reconstruction_mse", -1)}
"""Which pretraining record gives each method's quality, and its sign (so higher is better); see QUALITY."""


def _start_info(ctx: Context, ref: str) -> StartInfo:
    """Architecture, pretrained or not, and for a pretrain version its source, method and quality."""
    from harness.models.sources import resolve_model

    source = resolve_model(ctx, ref)
    info = StartInfo(source.backbone.name, bool(source.pretrained))
    summary = source.version.metrics.get(keys.PRETRAIN, {}) if source.version is not None else {}
    for method, (key, sign) in SCORES.items():
        if summary.get(key) is not None:
            return dataclasses.replace(info, source=summary.get("dataset"), method=method,
                                       quality=sign * float(summary[key]))
    return info


@dataclass(frozen=True)
class Budget:
    """One label budget and seed: the task (view) every start trains on, and its base recipe."""

    labels: int | None
    seed: int
    task: str
    recipe: Recipe
    n_train: int
    data_id: str


def _check_class_sizes(ctx: Context, dataset: str, need: int, labels: int) -> None:
    """Every class must have ``labels`` training plus the validation images, or the split is uneven."""
    import torch

    from harness.data.splits import load_split

    counts = torch.bincount(load_split(ctx, dataset, "train", image_size=None).labels)
    if int(counts.min()) < need:
        raise UsageError(f"{{param}}: a class has only {int(counts.min())} training images for {labels} labels + "
                         f"{need - labels} validation images; lower {{param}} or {{param:labels}}",
                         param="val_per_class")


def _budget(ctx: Context, config: StudyConfig, task_name: str, labels: int | None, seed: int) -> Budget:
    """The view ``per_class=labels+V,seed=seed`` with V per class for validation (a fraction exact to
    the image), small batches for small subsets; the whole task (10% validation) for ``all``."""
    from harness.data.splits import split_sizes
    from harness.data.views import View, register_view
    from harness.select.cache import dataset_hash
    from harness.train.recipe import recipe_for

    task = ctx.catalogue.task(task_name)
    v = config.val_per_class
    name = register_view(ctx, task.name, View(None, labels + v, seed)) if labels else task.name
    recipe = recipe_for(ctx.catalogue.task(name), config.budget, seed=seed, **config.recipe).replace(test_limit=None)
    size = recipe.input_size or task.protocol.input_size
    if labels:
        _check_class_sizes(ctx, ctx.catalogue.task(name).dataset, labels + v, labels)
        n_train = labels * (ctx.catalogue.datasets.get(task.dataset).num_classes or 2)
        recipe = recipe.replace(batch_size=min(recipe.batch_size, max(4, n_train // 4)),
                                val_fraction=v / (labels + v) + 1e-9, val_limit=None)
    else:
        n_train = split_sizes(ctx, task, image_size=size, train_limit=recipe.train_limit,
                              val_fraction=recipe.val_fraction, seed=seed, val_limit=recipe.val_limit)[0]
    return Budget(labels, seed, name, recipe, n_train, dataset_hash(ctx, ctx.catalogue.task(name).dataset, size))


def _recipes(config: StudyConfig, budget: Budget, pretrained: bool) -> Iterator[tuple[str, Recipe]]:
    """(arm, recipe) of every run of one start on one budget: the equal-steps strategies (scratch: full
    only), then the converged grid (scratch: full at each multiplier; pretrained: also linear)."""
    base = budget.recipe
    for strategy in config.strategies if pretrained else ("full",):
        yield EQUAL, base.replace(strategy=strategy)
    if config.converge is None:
        return
    epochs, patience = config.converge.budget(budget.n_train, base.batch_size)
    for strategy in GRID_STRATEGIES if pretrained else ("full",):
        for mult in config.lr_mults if strategy != "linear" else (1.0,):  # a frozen backbone ignores it
            yield CONVERGED, base.replace(strategy=strategy, backbone_lr_mult=mult, epochs=epochs, patience=patience)


def _plan_runs(ctx: Context, config: StudyConfig, task_name: str, starts: list[str], info: dict[str, StartInfo]
               ) -> tuple[list[tuple[StudyRun, str]], list[Job]]:
    """Every start x arm x recipe x budget x seed as (run, fingerprint), and the fine-tunes not cached."""
    from harness.environment import library_versions, select_device
    from harness.select.cache import cached_version, row_fingerprint, weights_identity
    from harness.select.halving import Job
    from harness.select.stages import CandidateRun

    env, device = library_versions(), select_device(ctx.device).type
    budgets = [_budget(ctx, config, task_name, labels, seed)
               for labels in config.labels for seed in range(config.seeds)]
    weights = {start: weights_identity(ctx, start) for start in starts}
    planned: list[tuple[StudyRun, str]] = []
    jobs: list[Job] = []
    for b in budgets:
        for start in starts:
            for arm, r in _recipes(config, b, info[start].pretrained):
                fp = row_fingerprint(start, weights[start], b.data_id, r.as_dict(), env, device, b.seed)
                version = cached_version(ctx, b.task, fp) if config.use_cache else None
                run = StudyRun(start, arm, r.strategy, r.backbone_lr_mult, b.labels, b.seed,
                               version.ref if version else "", max_epochs=r.epochs, patience=r.patience,
                               cached=bool(version))
                planned.append((run, fp))
                if version is None:
                    label = f"[{len(planned)}] {start} {arm} {run.recipe} {b.labels or 'all'}/class seed {b.seed}"
                    ctx.progress.info(f"{label}: fine-tune ({counted(r.epochs, 'epoch')} max)")
                    jobs.append(Job(CandidateRun(start, label), start, r, b.task))
    return planned, jobs


def _scored(ctx: Context, run: StudyRun, primary: str) -> StudyRun:
    """``run`` with its version's validation and test scores and how many epochs it trained."""
    version = ctx.store.get(run.model)
    history = version.metrics.get(keys.HISTORY) or []
    return dataclasses.replace(run, val=version.metrics.get(keys.VAL, {}).get(primary),
                               value=version.metrics.get(keys.TEST, {}).get(primary),
                               epochs=len(history) or None, best_epoch=version.recipe.get("best_epoch"))


def _protocol(config: StudyConfig) -> dict[str, Any]:
    """What the study did, in words and numbers, for the JSON and the README."""
    conv = config.converge
    return {
        "validation": f"{config.val_per_class} images per class outside the training labels (all labels: 10% of "
                      "train), the same for every start of a seed; early stopping and recipe choice only",
        "equal_steps": f"the {config.budget} budget's recipe; backbone lr x0.1 pretrained, x1 scratch",
        "converged": None if conv is None else {
            "steps": conv.steps, "min_epochs": conv.min_epochs, "max_epochs": conv.max_epochs,
            "patience": conv.patience or "a quarter of the epochs, at least 3",
            "grid": {"backbone_lr_mult": list(config.lr_mults), "strategies": list(GRID_STRATEGIES)},
            "choice": "per start and seed, the recipe with the best validation score; test reported"},
        "interval": "95% Student t over seeds of paired differences (same subset and seed)",
    }


def _notes(config: StudyConfig, runs: list[StudyRun], info: dict[str, StartInfo], small: int) -> list[str]:
    notes = ["no scratch rows for linear or partial: a probe on a random frozen backbone measures chance, not a "
             "baseline; every gain is over scratch full fine-tuning of the same backbone"]
    scratch = {i.backbone for i in info.values() if not i.pretrained}
    orphans = sorted({i.backbone for i in info.values() if i.pretrained} - scratch)
    if orphans:
        notes.append(f"no scratch start for {', '.join(orphans)}: their pretrained starts get no gain and no part in "
                     "the verdicts; add the backbone name(s) to --starts")
    converged = [r for r in runs if r.arm == CONVERGED]
    capped = [r for r in converged if not r.stopped_early]
    if capped:
        notes.append(f"{len(capped)} of {len(converged)} converged runs reached their epoch cap without an early "
                     "stop (they may still have been improving)")
    if small:
        notes.append(f"{small} correlation group(s) (arm, budget, strategy, source and method) had fewer than 3 "
                     "starts with a spread: not computed")
    return notes


def run_study(ctx: Context, config: StudyConfig, trainer: Trainer | None = None) -> StudyResult:
    """Fine-tune every start x arm x recipe x label budget x seed (cached by fingerprint); ``trainer``
    runs the fine-tunes that are not cached (default: one after another here; the Ray executor's
    ``train_jobs`` sends them to Ray)."""
    from harness.select.candidates import check_available, expand
    from harness.select.halving import serial_trainer

    started = time.perf_counter()
    ctx.store.require_writable()
    task = ctx.catalogue.task(config.task)
    primary = ctx.catalogue.metrics.get(task.primary_metric)
    starts = expand(ctx, config.starts)
    missing = [c for c in (check_available(ctx, s, offline=True) for s in starts) if not c.available]
    if missing:
        raise UsageError(f"{{param}}: {missing[0].ref} cannot be had here ({missing[0].reason})", param="starts")
    info = {start: _start_info(ctx, start) for start in starts}
    planned, jobs = _plan_runs(ctx, config, task.name, starts, info)
    trained = iter((trainer or serial_trainer)(ctx, jobs))
    runs: list[StudyRun] = []
    for run, fp in planned:
        if not run.cached:
            result = next(trained)
            if isinstance(result, BaseException):
                raise result
            run = dataclasses.replace(run, model=ctx.store.set_tags(
                result.ref, {keys.TAG_FINGERPRINT: fp, TAG_STUDY: "transfer"}).ref)
        run = _scored(ctx, run, primary.name)
        ctx.progress.info(f"{run.start} {run.arm} {run.recipe} {run.labels or 'all'}/class seed {run.seed}: "
                          f"val {run.val} test {run.value}" + (" (cached)" if run.cached else ""))
        runs.append(run)
    rows = summarise(runs, info, primary.higher_is_better, primary.name)
    correlation, small = correlate(rows, info)
    lines = verdicts(runs, info, primary.higher_is_better, primary.name)
    return StudyResult(task.name, primary.name, runs, rows, lines, correlation, _notes(config, runs, info, small),
                       _protocol(config), time.perf_counter() - started)


def plot_curves(result: StudyResult, path: str) -> None:
    """Learning curves: the primary metric against labels per class (log scale), one line per start
    at equal steps (dashed) and converged with the recipe chosen on validation (solid), 95% interval
    shaded."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("{param} needs matplotlib: pip install 'imgcls-harness[plot]'", param="plot_path") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = curves_figure(result)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def curves_figure(result: StudyResult) -> Any:
    """The figure :func:`plot_curves` saves: one colour per start in both arms, ticks at the budgets."""
    import matplotlib.pyplot as plt

    table = [t for t in result.table if t["arm"] == EQUAL or t["strategy"] == CHOSEN]
    most = max((t["labels_per_class"] for t in table if t["labels_per_class"] != "all"), default=1)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    lines: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in table:
        lines.setdefault((row["start"], row["arm"], row["strategy"]), []).append(row)
    starts = list(dict.fromkeys(row["start"] for row in table))
    colours = {start: f"C{i % 10}" for i, start in enumerate(starts)}  # one colour per start, in both arms
    for (start, arm, strategy), rows in sorted(lines.items()):
        pts = sorted((most * 2 if r["labels_per_class"] == "all" else r["labels_per_class"], r["mean"], r["ci95"])
                     for r in rows)
        xs, ys, hs = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o", color=colours[start], linestyle="--" if arm == EQUAL else "-",
                label=f"{start} ({strategy})" if arm == EQUAL else None)  # one entry per start: its colour
        ax.fill_between(xs, [y - h for y, h in zip(ys, hs, strict=True)], [y + h for y, h in zip(ys, hs, strict=True)],
                        color=colours[start], alpha=0.08)
    ax.set_xscale("log")
    budgets = sorted({most * 2 if t["labels_per_class"] == "all" else t["labels_per_class"] for t in table})
    ax.set_xticks(budgets, [("all" if b == most * 2 and any(t["labels_per_class"] == "all" for t in table) else str(b))
                            for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("training labels per class (log scale)")
    ax.set_ylabel(result.primary)
    ax.set_title(f"{result.task}: what pretraining buys (solid: converged, dashed: equal steps)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
    fig.tight_layout()
    return fig
