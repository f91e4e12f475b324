"""The per-candidate stages of a selection, each a small function over one :class:`CandidateRun`.

``train`` (every seed, reusing cached rows) -> ``export`` (once) -> ``parity`` (on that file) ->
``bench`` (on that file). A stage that raises anything becomes the row's failure, with the stage
named; the other candidates go on. :func:`run_candidate` runs a stage sequence and is the unit
an executor hands to a worker; the latency benchmark is kept in its own sequence
(:data:`DRIVER_STAGES`) so that timings can stay on one machine when training moves elsewhere.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.select.cache import cached_version, row_fingerprint, weights_identity
from harness.select.config import PARITY_SAMPLES, SelectConfig
from harness.select.row import LeaderboardRow, failed_row, row_from_versions, val_score
from harness.train.recipe import Recipe
from registry import Metric, PluginError, Task, first_line, keys
from registry.store import ModelVersion

if TYPE_CHECKING:
    from harness.context import Context
    from harness.onnx.export import ExportInfo


@dataclass(frozen=True)
class Plan:
    """What every candidate of one selection shares, decided once before the first one runs."""

    config: SelectConfig
    task: Task
    primary: Metric
    recipe: Recipe
    data_id: str
    environment: dict[str, Any]
    device: str
    group: str  # tags the versions of this selection (the seeds of a candidate share it)


@dataclass
class CandidateRun:
    """One candidate's progress through the stages; each stage fills its part."""

    ref: str
    label: str
    prescore: float | None = None
    status: str = "ok"
    versions: list[ModelVersion] = field(default_factory=list)
    onnx: ExportInfo | None = None
    failed_stage: str | None = None
    failure: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    workdir: Path | None = None
    prepared: dict[int, ModelVersion] = field(default_factory=dict)  # seed -> trained elsewhere, registered here

    @property
    def ok(self) -> bool:
        return self.failed_stage is None

    @property
    def reused(self) -> bool:
        """Every seed came from the cache and the best one carries parity and bench results."""
        best = self.best
        return (self.status == "cached" and best is not None and keys.PARITY in best.metrics
                and keys.BENCH in best.metrics)

    @property
    def best(self) -> ModelVersion | None:
        return self.versions[0] if self.versions else None

    def fail(self, stage: str, exc: BaseException) -> None:
        self.failed_stage, self.failure, self.status = stage, first_line(exc), "failed"


Stage = Callable[["Context", Plan, CandidateRun], None]


def seed_fingerprints(ctx: Context, plan: Plan, ref: str) -> list[tuple[Recipe, str]]:
    """(recipe, row fingerprint) of every seed of candidate ``ref``."""
    weights = weights_identity(ctx, ref)
    out = []
    for seed in range(plan.config.seeds):
        recipe = plan.recipe.replace(seed=seed)
        out.append((recipe, row_fingerprint(ref, weights, plan.data_id, recipe.as_dict(), plan.environment,
                                            plan.device, seed)))
    return out


def train(ctx: Context, plan: Plan, run: CandidateRun) -> None:
    """Fine-tune every seed, or reuse a stored run with the same fingerprint."""
    from harness.train.finetune import finetune

    cached_all = True
    for seed, (recipe, fp) in enumerate(seed_fingerprints(ctx, plan, run.ref)):
        version = run.prepared.get(seed)  # an executor trained it elsewhere and registered it
        if version is not None:
            cached_all = False
            halving = version.metrics.get(keys.HALVING)
            if halving:  # a time-limited rung model is never a full run's cache entry
                fp = f"{fp}-rung{halving['rung']}of{halving['rungs']}"
        elif plan.config.use_cache and (version := cached_version(ctx, plan.task.name, fp)) is not None:
            ctx.progress.info(f"{run.label}: seed {seed} cached as {version.ref}")
        else:
            cached_all = False
            ctx.progress.info(f"{run.label}: fine-tune (seed {seed})")
            # epoch bars (on a terminal) named after the candidate; epoch lines stay out of select's log
            quiet_lines = ctx.replace(progress=ctx.progress.child(lines=False, prefix=f"{run.label} "))
            result = finetune(quiet_lines, run.ref, plan.task.name, recipe)
            version = result.version
        version = ctx.store.set_tags(version.ref, {keys.TAG_FINGERPRINT: fp, keys.TAG_CANDIDATE: run.ref,
                                                   keys.TAG_SELECT: "1", keys.TAG_SELECT_GROUP: plan.group})
        if run.prescore is not None:
            version = ctx.store.update_metrics(version.ref, {keys.PRESCREEN: {
                "method": plan.config.prescreen, "score": round(run.prescore, 4)}})
        run.versions.append(version)
        if plan.primary.name not in version.metrics[keys.TEST]:  # kept in the store, never ranked
            why = version.metrics.get(keys.TEST_FAILED, {}).get(plan.primary.name, "no test score")
            raise PluginError(f"{why} (the trained model is kept as {version.ref})")
        val = val_score(version, plan.primary.name)
        ctx.progress.info(f"{run.label}: seed {seed} {plan.primary.name} "
                          + (f"val {val:.4f}, " if val is not None else "")
                          + f"test {version.metrics[keys.TEST][plan.primary.name]:.4f}")
    sign = 1 if plan.primary.higher_is_better else -1  # the best seed on validation is exported; test picks nothing
    run.versions.sort(key=lambda v: -sign * _or(val_score(v, plan.primary.name), -sign * math.inf))
    run.status = "cached" if cached_all else "ok"


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def export(ctx: Context, plan: Plan, run: CandidateRun) -> None:
    """Export the best seed to ONNX once; parity and bench use this file."""
    from harness.onnx.export import export_model

    if run.reused:
        return
    assert run.best is not None and run.workdir is not None
    ctx.progress.info(f"{run.label}: export to ONNX")
    run.onnx = export_model(ctx, run.best.ref, run.workdir).info
    tracked = ctx.tracking.runs.get(run.best.ref)
    if tracked is not None:
        ctx.tracking.artifact(tracked, "onnx", run.onnx.path)


def parity(ctx: Context, plan: Plan, run: CandidateRun) -> None:
    """ONNX Runtime against PyTorch on the task's test images (recorded with the version)."""
    from harness.onnx.parity import check_parity

    if run.reused:
        return
    assert run.best is not None and run.onnx is not None
    ctx.progress.info(f"{run.label}: ONNX parity")
    check_parity(ctx, run.best.ref, plan.task.name, samples=PARITY_SAMPLES, onnx_file=run.onnx.path)


def bench(ctx: Context, plan: Plan, run: CandidateRun) -> None:
    """ONNX Runtime (and eager PyTorch at the longer budgets) at batch 1 and 32, recorded with the version."""
    from harness.onnx.bench import bench as run_bench

    if run.reused:
        return
    assert run.best is not None and run.onnx is not None
    effort = plan.config.bench_effort
    ctx.progress.info(f"{run.label}: benchmark {' vs '.join(effort.runtimes)}")
    run_bench(ctx, run.best.ref, batch_sizes=(1, 32), runtimes=effort.runtimes, rounds=effort.rounds,
              iters=effort.iters, threads=plan.config.threads, onnx_file=run.onnx.path)


TRAINING_STAGES: tuple[Stage, ...] = (train, export, parity)
"""Stages that may run wherever the candidate trains (another process or machine)."""
DRIVER_STAGES: tuple[Stage, ...] = (bench,)
"""Stages whose timings must come from one machine, one candidate at a time."""
STAGES = TRAINING_STAGES + DRIVER_STAGES


def run_stages(ctx: Context, plan: Plan, run: CandidateRun, stages: Sequence[Stage] = STAGES, *,
               cleanup: bool = True, on_stage: Callable[[CandidateRun, str], None] | None = None) -> CandidateRun:
    """Run ``stages`` in order until one fails, timing each. The ONNX file lives in the run's work
    folder, removed at the end unless ``cleanup`` is False (more stages follow elsewhere).
    ``on_stage(run, name)`` is called as each stage starts (a progress bar's live line)."""
    run.workdir = run.workdir or Path(tempfile.mkdtemp(prefix="harness-select-"))
    try:
        for stage in stages:
            if not run.ok:
                break
            if on_stage is not None:
                on_stage(run, stage.__name__)
            started = time.perf_counter()
            try:
                stage(ctx, plan, run)
            except Exception as exc:  # any crash in one candidate's stage is that row's failure
                run.fail(stage.__name__, exc)
                ctx.progress.info(f"{run.label}: FAILED in {stage.__name__}: {run.failure}")
            run.seconds[stage.__name__] = run.seconds.get(stage.__name__, 0.0) + time.perf_counter() - started
    finally:
        if cleanup or not run.ok:
            shutil.rmtree(run.workdir, ignore_errors=True)
    return run


def row_of(ctx: Context, plan: Plan, run: CandidateRun) -> LeaderboardRow:
    """The candidate's leaderboard row, read back from the store like ``harness leaderboard`` does."""
    if not run.ok:
        return failed_row(run.ref, plan.primary.name, run.failed_stage or "?", run.failure or "",
                          None if run.prescore is None else round(run.prescore, 4))
    versions = [ctx.store.get(v.ref) for v in run.versions]
    row = row_from_versions(run.ref, versions, plan.primary.name, plan.primary.higher_is_better, run.status)
    return dataclasses.replace(row, chosen=False)  # this selection decides, not an older alias
