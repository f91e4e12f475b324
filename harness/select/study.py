"""``harness study transfer``: what pretraining buys on a task, at each label budget.

Every start (a backbone from scratch, a zoo or registry model, an ImageNet tag) is fine-tuned with
every strategy on the task's view ``per_class=B,seed=S`` for every label budget B and seed S, and
evaluated on the task's whole test split. The table gives, per start, strategy and budget, the
mean of the primary metric over seeds with its 95% interval and the gain over the same backbone
from scratch; pretraining quality (source accuracy, or minus the reconstruction error) is related
to that gain by a rank correlation per pretraining method. Runs are cached by fingerprint like
select's rows, so a study grows by what is new.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from registry import UsageError, keys

if TYPE_CHECKING:
    from harness.context import Context
    from harness.select.halving import Job, Trainer

TAG_STUDY = "study"


@dataclass(frozen=True)
class StudyConfig:
    task: str
    starts: tuple[str, ...]
    labels: tuple[int | None, ...] = (10, 50, None)  # training images per class; None: all
    seeds: int = 3
    strategies: tuple[str, ...] = ("full",)
    budget: str = "quick"
    recipe: dict[str, Any] = field(default_factory=dict)
    use_cache: bool = True

    def __post_init__(self) -> None:
        from harness.train.recipe import STRATEGIES

        if self.seeds < 1:
            raise UsageError("{param} must be at least 1", param="seeds")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise UsageError(f"{{param}} {bad[0]!r}: use {', '.join(STRATEGIES)}", param="strategies")
        if any(b is not None and b < 1 for b in self.labels):
            raise UsageError("{param}: label budgets are whole numbers of at least 1, or 'all'", param="labels")


@dataclass(frozen=True)
class StudyRun:
    start: str
    strategy: str
    labels: int | None
    seed: int
    model: str
    value: float | None
    cached: bool


@dataclass
class StudyResult:
    task: str
    primary: str
    runs: list[StudyRun]
    table: list[dict[str, Any]]
    correlation: list[dict[str, Any]]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "primary_metric": self.primary, "table": self.table,
                "correlation": self.correlation, "runs": [r.__dict__ for r in self.runs],
                "seconds": round(self.seconds, 1)}


def _backbone(ctx: Context, ref: str) -> tuple[str, bool]:
    """(backbone name, pretrained?) of a start."""
    from harness.models.sources import resolve_model

    source = resolve_model(ctx, ref)
    return source.backbone.name, bool(source.pretrained)


QUALITY = {"supervised": "val accuracy", "contrastive": "val positive-pair accuracy",
           "autoencoder": "minus val reconstruction MSE"}
"""What 'pretraining quality' means per method (each higher is better)."""


def _quality(ctx: Context, ref: str) -> tuple[str, float] | None:
    """(method, pretraining quality, higher better) of a zoo/pretrain version, or None."""
    try:
        version = ctx.store.get(ref)
    except Exception:  # a backbone name or a tag: no pretraining record here
        return None
    summary = version.metrics.get(keys.PRETRAIN, {})
    if summary.get("val_accuracy") is not None:
        return "supervised", float(summary["val_accuracy"])
    if summary.get("val_pair_accuracy") is not None:
        return "contrastive", float(summary["val_pair_accuracy"])
    if summary.get("val_reconstruction_mse") is not None:
        return "autoencoder", -float(summary["val_reconstruction_mse"])
    return None


def _plan_runs(ctx: Context, config: StudyConfig, task_name: str, starts: list[str]
               ) -> tuple[list[tuple[StudyRun, str]], list[Job]]:
    """Every start x strategy x budget x seed as (run, fingerprint), and the fine-tunes not cached."""
    from harness.data.views import View, register_view
    from harness.environment import library_versions, select_device
    from harness.select.cache import cached_version, dataset_hash, row_fingerprint, weights_identity
    from harness.select.halving import Job
    from harness.select.stages import CandidateRun
    from harness.train.recipe import recipe_for

    task = ctx.catalogue.task(task_name)
    env, device = library_versions(), select_device(ctx.device).type
    planned: list[tuple[StudyRun, str]] = []  # (run, fingerprint)
    jobs: list[Job] = []
    total = len(config.labels) * config.seeds * len(starts) * len(config.strategies)
    for labels in config.labels:
        for seed in range(config.seeds):
            view_task = register_view(ctx, task.name, View(None, labels, seed)) if labels else task.name
            recipe = recipe_for(ctx.catalogue.task(view_task), config.budget, seed=seed, **config.recipe)
            recipe = recipe.replace(test_limit=None)  # every test image of the task's classes
            if labels:  # a few labels: batches small enough for several steps per epoch
                n_train = labels * (ctx.catalogue.datasets.get(task.dataset).num_classes or 2)
                recipe = recipe.replace(batch_size=min(recipe.batch_size, max(4, n_train // 4)))
            data_id = dataset_hash(ctx, ctx.catalogue.task(view_task).dataset,
                                   recipe.input_size or task.protocol.input_size)
            for start in starts:
                for strategy in config.strategies:
                    r = recipe.replace(strategy=strategy)
                    fp = row_fingerprint(start, weights_identity(ctx, start), data_id, r.as_dict(), env, device, seed)
                    version = cached_version(ctx, view_task, fp) if config.use_cache else None
                    label = f"[{len(planned) + 1}/{total}] {start} {strategy} {labels or 'all'}/class seed {seed}"
                    run = StudyRun(start, strategy, labels, seed, version.ref if version else "", None, bool(version))
                    planned.append((run, fp))
                    if version is None:
                        ctx.progress.info(f"{label}: fine-tune")
                        jobs.append(Job(CandidateRun(start, label), start, r, view_task))
    return planned, jobs


def run_study(ctx: Context, config: StudyConfig, trainer: Trainer | None = None) -> StudyResult:
    """Fine-tune every start x strategy x label budget x seed (cached by fingerprint); ``trainer``
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
    planned, jobs = _plan_runs(ctx, config, task.name, starts)
    trained = iter((trainer or serial_trainer)(ctx, jobs))
    runs: list[StudyRun] = []
    for run, fp in planned:
        if not run.cached:
            result = next(trained)
            if isinstance(result, BaseException):
                raise result
            ref = ctx.store.set_tags(result.ref, {keys.TAG_FINGERPRINT: fp, TAG_STUDY: "transfer"}).ref
            run = dataclasses.replace(run, model=ref)
        version = ctx.store.get(run.model)
        run = dataclasses.replace(run, value=version.metrics.get(keys.TEST, {}).get(primary.name))
        ctx.progress.info(f"{run.start} {run.strategy} {run.labels or 'all'}/class seed {run.seed}: "
                          f"{primary.name} {run.value}" + (" (cached)" if run.cached else ""))
        runs.append(run)
    table = summarise(ctx, runs, primary.higher_is_better)
    return StudyResult(task.name, primary.name, runs, table, correlate(ctx, table), time.perf_counter() - started)


def summarise(ctx: Context, runs: list[StudyRun], higher_is_better: bool) -> list[dict[str, Any]]:
    """Mean and 95% interval per start, strategy and budget; the gain over scratch of the same backbone."""
    from harness.select.choose import mean_ci

    groups: dict[tuple[str, str, int | None], list[float]] = defaultdict(list)
    for run in runs:
        if run.value is not None:
            groups[(run.start, run.strategy, run.labels)].append(run.value)
    info = {start: _backbone(ctx, start) for start, _, _ in groups}
    scratch = {(info[s][0], st, lab): vals for (s, st, lab), vals in groups.items() if not info[s][1]}
    table = []
    for (start, strategy, labels), values in groups.items():
        mean, half = mean_ci(values)
        base = scratch.get((info[start][0], strategy, labels))
        gain = None
        if base and info[start][1]:
            gain = round((mean - mean_ci(base)[0]) * (1 if higher_is_better else -1), 4)
        table.append({"start": start, "strategy": strategy, "labels_per_class": labels or "all",
                      "seeds": len(values), "mean": round(mean, 4), "ci95": round(half, 4), "gain_vs_scratch": gain})
    order = {lab: i for i, lab in enumerate(dict.fromkeys(r.labels or "all" for r in runs))}
    return sorted(table, key=lambda t: (order[t["labels_per_class"]], t["strategy"], -t["mean"]))


def correlate(ctx: Context, table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spearman's rank correlation between pretraining quality and gain over scratch, per method."""
    from scipy.stats import spearmanr

    pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in table:
        quality = _quality(ctx, row["start"]) if row["gain_vs_scratch"] is not None else None
        if quality is not None:
            pairs[quality[0]].append((quality[1], row["gain_vs_scratch"]))
    out = []
    for method, points in sorted(pairs.items()):
        rho = None
        if len(points) >= 3 and len({p[0] for p in points}) > 1 and len({p[1] for p in points}) > 1:
            rho = round(float(spearmanr([p[0] for p in points], [p[1] for p in points]).statistic), 3)
        out.append({"method": method, "pairs": len(points), "spearman": rho,
                    "quality": QUALITY[method]})
    return out


def plot_curves(result: StudyResult, path: str) -> None:
    """Learning curves: the primary metric against labels per class (log scale), one line per start
    and strategy, the 95% interval shaded."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("{param} needs matplotlib: pip install 'imgcls-harness[plot]'", param="plot_path") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    most = max((t["labels_per_class"] for t in result.table if t["labels_per_class"] != "all"), default=1)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    lines: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in result.table:
        lines[(row["start"], row["strategy"])].append(row)
    for (start, strategy), rows in sorted(lines.items()):
        pts = sorted((most * 2 if r["labels_per_class"] == "all" else r["labels_per_class"], r["mean"], r["ci95"])
                      for r in rows)
        xs, ys, hs = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o", label=f"{start} ({strategy})")
        ax.fill_between(xs, [y - h for y, h in zip(ys, hs, strict=True)], [y + h for y, h in zip(ys, hs, strict=True)],
                        alpha=0.15)
    ax.set_xscale("log")
    has_all = any(t["labels_per_class"] == "all" for t in result.table)
    ax.set_xlabel("training labels per class" + (f" (rightmost point: all, drawn at {most * 2})" if has_all else ""))
    ax.set_ylabel(result.primary)
    ax.set_title(f"{result.task}: what pretraining buys")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
