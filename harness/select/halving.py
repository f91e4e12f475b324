"""``select --time-limit``: successive halving of the candidates within a wall-clock budget.

Rungs of growing epochs (reduction factor 3, as in Hyperband/ASHA): with E the recipe's epochs,
rung k trains to ``E / 3**(K-k)`` epochs (at least 1), rung K to all of E. Every candidate gets
rung 0; after each rung the best third by *validation* score (never test) is continued, warm-
started from its rung model for the extra epochs (learning rate restarted, no warm-up: the model
is already trained), while the estimated time of the continuation (seconds per epoch measured at
the previous rung) fits in what is left of the budget. A candidate keeps the model of the last
rung it reached; the leaderboard's ``rung`` column says which (e.g. ``2/3 (3 ep)``), and the
versions' lineage chains a candidate's rungs. The budget bounds the training rungs; export, parity
and the latency benchmark of the rows follow it.

Models trained at a rung below the last are tagged with their own fingerprint (the row's plus the
rung), so a later selection without ``--time-limit`` never mistakes them for full runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.select.stages import CandidateRun, Plan
from harness.train.recipe import Recipe
from registry import UsageError, first_line, keys

if TYPE_CHECKING:
    from harness.context import Context
    from registry.store import ModelVersion

ETA = 3
"""Reduction factor: keep the best 1/ETA at each rung; epochs grow by ETA."""


@dataclass(frozen=True)
class Job:
    """One training of one candidate at one rung."""

    run: CandidateRun
    start: str  # what it starts from: the candidate, or its previous rung's version
    recipe: Recipe
    task: str
    halving: dict[str, Any] = field(default_factory=dict)  # recorded with the version (time-limited rungs)


Trainer = Callable[["Context", Sequence[Job]], list["ModelVersion | BaseException"]]
"""Fine-tunes jobs and returns each one's registered version, or the exception that stopped it."""


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``1.5h``."""
    raw = text.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(raw[-1:])
    try:
        value = float(raw[:-1] if scale else raw) * (scale or 1)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{{param}} {text!r} is not a duration; use e.g. 90s, 10m or 1.5h", param="time_limit")
    return value


def rung_epochs(epochs: int) -> list[int]:
    """The cumulative epochs of each rung for a recipe of ``epochs``."""
    top = math.ceil(math.log(epochs, ETA) - 1e-9) if epochs > 1 else 0
    out: list[int] = []
    for k in range(top + 1):
        e = max(1, round(epochs / ETA ** (top - k)))
        if not out or e > out[-1]:
            out.append(e)
    return out


def serial_trainer(ctx: Context, jobs: Sequence[Job]) -> list[ModelVersion | BaseException]:
    """Train ``jobs`` one after another in this process."""
    from harness.train.finetune import finetune

    out: list[ModelVersion | BaseException] = []
    for job in jobs:
        quiet = ctx.replace(progress=ctx.progress.child(lines=False, prefix=f"{job.run.label} "))
        try:
            out.append(finetune(quiet, job.start, job.task, job.recipe).version)
        except Exception as exc:  # one candidate's failure is its row's, the others go on
            out.append(exc)
    return out


def run_halving(ctx: Context, plan: Plan, runs: Sequence[CandidateRun], limit_s: float, trainer: Trainer,
                parallel: int = 1) -> None:
    """Train ``runs`` by successive halving within ``limit_s``; each run's model lands in ``run.prepared[0]``."""
    began = time.perf_counter()
    epochs = rung_epochs(plan.recipe.epochs)
    reached: dict[str, tuple[ModelVersion, float]] = {}  # ref -> (version at its last rung, s/epoch)
    alive = list(runs)
    for k, total in enumerate(epochs):
        jobs = [_job(plan, run, k, epochs, reached) for run in alive]
        ctx.progress.info(f"time limit: rung {k + 1}/{len(epochs)} ({total} epochs) for up to {len(jobs)} "
                          f"candidate(s), {time.perf_counter() - began:.0f}s of {limit_s:.0f}s spent")
        trained = 0
        for chunk in (jobs[i:i + parallel] for i in range(0, len(jobs), parallel)):
            need = max((reached[j.run.ref][1] * j.recipe.epochs for j in chunk), default=0.0) if k else 0.0
            if time.perf_counter() - began + need > limit_s:
                break  # in order of validation score: what follows would not fit either
            started = time.perf_counter()
            results = trainer(ctx, chunk)
            seconds = time.perf_counter() - started
            for job, result in zip(chunk, results, strict=True):
                _record(ctx, job, result, seconds, reached)  # a chunk's jobs ran side by side
            trained += len(chunk)
        if not trained:
            break
        scored = [r for r in alive if r.ok and r.ref in reached]
        sign = 1 if plan.primary.higher_is_better else -1
        scored.sort(key=lambda r: -sign * _val(reached[r.ref][0], plan.primary.name))
        alive = scored[: max(1, math.ceil(len(scored) / ETA))]
    for run in runs:
        if run.ok and run.ref not in reached:
            run.fail("train", UsageError("the time limit was spent before its first rung"))
        elif run.ok:
            run.prepared[0] = reached[run.ref][0]
    ctx.progress.info(f"time limit: search took {time.perf_counter() - began:.0f}s of {limit_s:.0f}s")


def _job(plan: Plan, run: CandidateRun, k: int, epochs: list[int],
         reached: dict[str, tuple[ModelVersion, float]]) -> Job:
    """Rung ``k`` of ``run``: from the candidate itself, or continued from its previous rung's model."""
    base = plan.recipe.replace(seed=0)
    info = {"rung": k + 1, "rungs": len(epochs), "epochs": epochs[k], "of_epochs": epochs[-1]}
    if not k:
        return Job(run, run.ref, base.replace(epochs=epochs[0]), plan.task.name, info)
    previous = reached[run.ref][0]
    recipe = base.replace(epochs=epochs[k] - epochs[k - 1], warmup_epochs=0.0,
                          backbone_lr_mult=previous.recipe.get("backbone_lr_mult"))
    return Job(run, previous.ref, recipe, plan.task.name, info)


def _record(ctx: Context, job: Job, result: Any, seconds: float,
            reached: dict[str, tuple[ModelVersion, float]]) -> None:
    run = job.run
    if isinstance(result, BaseException):
        if run.ref not in reached:  # no model at all: a failed row
            run.fail("train", result)
        ctx.progress.warn(f"{run.label}: rung {job.halving['rung']} failed: {first_line(result)}")
        return
    run.seconds["train"] = run.seconds.get("train", 0.0) + seconds
    version = ctx.store.update_metrics(result.ref, {keys.HALVING: job.halving})
    per_epoch = seconds / max(job.recipe.epochs, 1)  # wall time, data loading included
    reached[run.ref] = (version, per_epoch)
    ctx.progress.info(f"{run.label}: rung {job.halving['rung']}/{job.halving['rungs']} "
                      f"({job.halving['epochs']} ep) val {_val(version, '')}")


def _val(version: ModelVersion, primary: str) -> float:
    values = version.metrics.get(keys.VAL, {})
    value = values.get(primary) if primary else next(iter(values.values()), None)
    return float(value) if value is not None and math.isfinite(value) else -math.inf
