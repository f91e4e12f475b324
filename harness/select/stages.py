"""The per-candidate stages of a selection, each a small function over one :class:`CandidateRun`.

``train`` (every seed, reusing cached rows) -> ``calibrate`` (temperature on validation) ->
``export`` (once) -> ``parity`` (on that file) -> ``robustness`` (the corruption suite on that file,
where cheap) -> ``bench`` (on that file). A stage that raises anything becomes the row's failure, with the stage
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
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.select.cache import cached_version, row_fingerprint, weights_identity
from harness.select.claims import claim
from harness.select.config import PARITY_SAMPLES, SelectConfig
from harness.select.row import LeaderboardRow, failed_row, row_from_versions, val_score
from harness.train.recipe import Recipe
from registry import Metric, PluginError, Task, first_line, keys
from registry.store import ModelVersion

if TYPE_CHECKING:
    from harness.context import Context
    from harness.models.sources import ModelSource
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
    halving: bool = False  # candidates trained by successive halving (the budget's, or --time-limit)
    models: dict[str, ModelSource] = field(default_factory=dict, compare=False, repr=False)  # see model()
    sizes: list[tuple[int, int, int, int]] = field(default_factory=list, compare=False, repr=False)  # split_sizes()

    def split_sizes(self, ctx: Context) -> tuple[int, int, int, int]:
        """(train, validation, test images, classes) the recipe trains and scores on, counted once
        per selection (the batch check and the estimate both need them; the batch does not change them)."""
        if not self.sizes:
            from harness.data.splits import split_sizes

            r, task = self.recipe, self.task
            self.sizes.append(split_sizes(ctx, task, image_size=r.input_size or task.protocol.input_size,
                                          train_limit=r.train_limit, test_limit=r.test_limit,
                                          val_fraction=r.val_fraction, seed=r.seed, val_limit=r.val_limit))
        return self.sizes[0]

    def model(self, ctx: Context, ref: str) -> ModelSource:
        """Candidate ``ref`` resolved once per selection and handed to every stage after: a name
        resolved again could disagree, and resolving a registry version hashes its weights file."""
        source = self.models.get(ref)
        if source is None:
            from harness.models.sources import resolve_model

            source = self.models[ref] = resolve_model(ctx, ref)
        return source


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
    prepared_cached: bool = False  # the prepared versions came from the store (a rerun's halving rungs)

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
    from harness.environment import builder_versions

    source = plan.model(ctx, ref)
    weights = weights_identity(ctx, ref, source)
    # timm's version (or a plugin's) for the candidates it builds: an upgrade retrains
    environment = {**plan.environment, **builder_versions(source.backbone)}
    out = []
    for seed in range(plan.config.seeds):
        recipe = plan.recipe.replace(seed=seed)
        out.append((recipe, row_fingerprint(ref, weights, plan.data_id, recipe.as_dict(), environment,
                                            plan.device, seed)))
    return out


def train(ctx: Context, plan: Plan, run: CandidateRun) -> None:
    """Fine-tune every seed, or reuse a stored run with the same fingerprint."""
    cached_all = True
    for seed, (recipe, fp) in enumerate(seed_fingerprints(ctx, plan, run.ref)):
        version = run.prepared.get(seed)  # an executor trained it elsewhere and registered it
        if version is not None:
            cached_all = cached_all and run.prepared_cached
            halving = version.metrics.get(keys.HALVING)
            if halving:  # a rung model is never a full run's cache entry: its own key, as halving set it
                fp = halving.get("fingerprint") or f"{fp}-rung{halving['rung']}of{halving['rungs']}"
            version = _tag(ctx, plan, run, version, fp)
        else:  # claimed: a concurrent select on this store waits here, then reuses this row
            with claim(ctx.store.home, fp, ctx.progress, run.label) if plan.config.use_cache else nullcontext():
                version, cached = _reuse_or_train(ctx, plan, run, seed, recipe, fp)
                version = _tag(ctx, plan, run, version, fp)
            cached_all = cached_all and cached
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


def _reuse_or_train(ctx: Context, plan: Plan, run: CandidateRun, seed: int, recipe: Recipe,
                    fp: str) -> tuple[ModelVersion, bool]:
    """The stored version with fingerprint ``fp`` (and True), else a new fine-tune (and False)."""
    from harness.train.finetune import finetune

    if plan.config.use_cache and (version := cached_version(ctx, plan.task.name, fp)) is not None:
        ctx.progress.info(f"{run.label}: seed {seed} cached as {version.ref}")
        return version, True
    ctx.progress.info(f"{run.label}: fine-tune (seed {seed})")
    # epoch bars (on a terminal) named after the candidate; epoch lines stay out of select's log
    quiet_lines = ctx.replace(progress=ctx.progress.child(lines=False, prefix=f"{run.label} "))
    return finetune(quiet_lines, run.ref, plan.task, recipe, source=plan.model(ctx, run.ref)).version, False


def _tag(ctx: Context, plan: Plan, run: CandidateRun, version: ModelVersion, fp: str) -> ModelVersion:
    """Mark ``version`` as this selection's row ``fp`` (what the cache, and a waiting select, look up)."""
    return ctx.store.set_tags(version.ref, {keys.TAG_FINGERPRINT: fp, keys.TAG_CANDIDATE: run.ref,
                                            keys.TAG_SELECT: "1", keys.TAG_SELECT_GROUP: plan.group})


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


def calibrate(ctx: Context, plan: Plan, run: CandidateRun) -> None:
    """Temperature scaling fitted on the best seed's validation predictions, recorded with the
    version (``export`` writes the temperature into the ONNX file's metadata; the row shows the
    test ECE after it beside the raw ``ece``)."""
    from harness.predictions.calibration import ensure_calibration

    assert run.best is not None
    ensure_calibration(ctx, run.best)


def robustness(ctx: Context, plan: Plan, run: CandidateRun) -> None:
    """The corruption suite on the exported file (recorded with the version); by default
    (``config.robustness`` None) only where 40 passes cost at most ``AUTO_SHARE`` of the training."""
    from harness.evaluate import robustness as suite

    best = run.best
    assert best is not None
    if plan.config.robustness is False or suite.stored_report(ctx.store.get(best.ref), suite.DEFAULT_SAMPLES):
        return
    trained = best.metrics.get(keys.TRAIN, {}).get("seconds")
    within = suite.AUTO_SHARE * trained if plan.config.robustness is None and trained else None
    result = suite.measure_robustness(ctx, best.ref, plan.task.name, onnx_file=run.onnx.path if run.onnx else None,
                                      threads=plan.config.threads, within_s=within)
    if isinstance(result, suite.RobustnessSkipped):
        ctx.progress.info(f"{run.label}: robustness skipped: {result.reason}")


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


def int8(ctx: Context, plan: Plan, run: CandidateRun) -> None:
    """With ``--int8``: quantize the best seed's ONNX file, score both files on its validation and test
    images, time both in interleaved rounds; the verdict (offered or why not) is recorded with the version."""
    from dataclasses import asdict

    from harness.evaluate.int8_check import check_int8
    from harness.onnx.export import export_model

    policy, best = plan.config.int8, run.best
    if policy is None:
        return
    assert best is not None and run.workdir is not None
    stored = ctx.store.get(best.ref).metrics.get(keys.INT8)
    if run.reused and stored and stored.get("policy") == asdict(policy):
        return
    onnx = run.onnx.path if run.onnx else export_model(ctx, best.ref, run.workdir, register=False).info.path
    found = check_int8(ctx, best.ref, onnx, run.workdir / "int8.onnx", policy=policy, threads=plan.config.threads)
    ctx.store.update_metrics(best.ref, {keys.INT8: found.as_dict()})
    ctx.progress.info(f"{run.label}: INT8 {found.summary()}")


TRAINING_STAGES: tuple[Stage, ...] = (train, calibrate, export, parity, robustness)
"""Stages that may run wherever the candidate trains (another process or machine)."""
DRIVER_STAGES: tuple[Stage, ...] = (bench, int8)
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
    if stages and (stages[-1] is STAGES[-1] or not run.ok):
        end_tracked_runs(ctx, plan, run)
    return run


TRADEOFF = ("ort_b1_ms", "ort_b32_ms", "ort_b32_img_s", "eager_b1_ms", "eager_b32_ms", "params_m", "gflops",
            "size_mb")
"""The leaderboard columns a candidate's tracked run gets as metrics (``select/<column>``)."""


def tradeoff_metrics(row: LeaderboardRow) -> dict[str, float]:
    """What select weighs for one candidate, as tracker metrics: validation score, latency,
    throughput, params, FLOPs, ONNX size (named as the leaderboard's columns, under ``select/``)
    and parity (1 passed, 0 failed), so that MLflow's compare view shows the trade-off."""
    values = {f"val_{row.primary}": row.val, **{name: getattr(row, name) for name in TRADEOFF}}
    out = {f"select/{k}": float(v) for k, v in values.items()
           if isinstance(v, (int, float)) and math.isfinite(v)}
    if row.parity is not None:
        out["select/parity_passed"] = 1.0 if row.parity == "passed" else 0.0
    return out


def end_tracked_runs(ctx: Context, plan: Plan, run: CandidateRun) -> None:
    """End the candidate's tracked fine-tunes, held open by the selection until its ONNX export
    and benchmark were sent: the version shown on the leaderboard gets :func:`tradeoff_metrics`."""
    if not ctx.tracking.on or not run.versions:
        return
    row = row_of(ctx, plan, run) if run.ok else None
    for version in run.versions:
        ctx.tracking.release(version.ref, tradeoff_metrics(row) if row and version.ref == row.model else None)


def row_of(ctx: Context, plan: Plan, run: CandidateRun) -> LeaderboardRow:
    """The candidate's leaderboard row, read back from the store like ``harness leaderboard`` does."""
    if not run.ok:
        return failed_row(run.ref, plan.primary.name, run.failed_stage or "?", run.failure or "",
                          None if run.prescore is None else round(run.prescore, 4))
    versions = [ctx.store.get(v.ref) for v in run.versions]
    row = row_from_versions(run.ref, versions, plan.primary.name, plan.primary.higher_is_better, run.status)
    return dataclasses.replace(row, chosen=False)  # this selection decides, not an older alias
