"""Successive halving of select's candidates: the quick budget's default (``Budget.halving_epochs``),
``--halving``, and ``--time-limit`` (the same within a wall-clock budget).

Rungs of growing epochs (reduction factor 3, as in Hyperband/ASHA): with E the recipe's epochs,
rung k trains to ``E / 3**(K-k)`` epochs (at least 1), rung K to all of E. Every candidate gets
rung 0; after each rung the best third by *validation* score (never test; rounded down as in
Hyperband, at least one) is continued, warm-started from its rung model for the extra epochs
(learning rate restarted, no warm-up: the model is already trained), while the estimated time of
the continuation (seconds per epoch measured at the previous rung) fits in what is left of the
budget. A lone survivor has nothing left to be compared with, so it skips the rungs between and
trains straight to the last one (under a time limit: the last one that fits). For the quick
budget's four candidates and nine epochs: 4 x 1 epoch, then the best 1 x 8 more epochs. The
ceiling rule (two of four go on, rungs of 1, 3 and 9 epochs) took 302 s for the same winner
(test 0.9099 against 0.9115) where this takes 233 s: the main job, 2 quiet cores, 2026-12-06.

A candidate keeps the model of the last rung it reached; the leaderboard's ``rung`` column says
which (e.g. ``2/3 (3 ep)``), and the versions' lineage chains a candidate's rungs. The budget
bounds the training rungs; export, parity and the latency benchmark of the rows follow it.

Models trained at a rung below the last are tagged with their own fingerprint (the row's plus the
rung), so a selection without halving never mistakes them for full runs; a selection with halving
reuses them rung by rung (the rungs are deterministic), so a rerun trains nothing.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.output import counted
from harness.select.stages import CandidateRun, Plan
from harness.train.recipe import Recipe
from registry import UsageError, first_line, keys

if TYPE_CHECKING:
    from harness.context import Context
    from harness.models.sources import ModelSource
    from registry import Task
    from registry.store import ModelVersion

ETA = 3
"""Reduction factor: keep the best 1/ETA at each rung; epochs grow by ETA."""


@dataclass(frozen=True)
class Job:
    """One training of one candidate at one rung."""

    run: CandidateRun
    start: str  # what it starts from: the candidate, or its previous rung's version
    recipe: Recipe
    task: str | Task  # the selection's task, or a task's name
    halving: dict[str, Any] = field(default_factory=dict)  # recorded with the version (time-limited rungs)
    source: ModelSource | None = None  # ``start`` resolved already (a candidate's first rung)

    @property
    def task_name(self) -> str:
        """The task's name (what travels to a worker)."""
        return self.task if isinstance(self.task, str) else self.task.name


Trainer = Callable[["Context", Sequence[Job]], list["ModelVersion | BaseException"]]
"""Fine-tunes jobs and returns each one's registered version, or the exception that stopped it."""


_NUM = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"  # ASCII digits only (\d would take other scripts' too)
LONGEST = 366 * 86400
"""A longer limit is a typo (``99999h``), refused rather than printed back as 1e+20 h."""
_DURATION = re.compile(rf"{_NUM}|(?:{_NUM}h)?\s*(?:{_NUM}m)?\s*(?:{_NUM}s)?")


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``1.5h`` or parts in order: ``1h30m``, ``2m 30s``."""
    found = _DURATION.fullmatch(text.strip().lower())
    parts = found.groups() if found else ()
    value = sum(float(n) * scale for n, scale in zip(parts, (1, 3600, 60, 1), strict=True) if n) if found else -1.0
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{{param}} {text!r} is not a duration; use e.g. 90s, 10m, 1.5h or 1h30m",
                         param="time_limit")
    if value > LONGEST:
        raise UsageError(f"{{param}} {text!r} is longer than a year; use e.g. 10m, 1.5h or 1h30m",
                         param="time_limit")
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


def survivors(trained: int) -> int:
    """How many of ``trained`` go on to the next rung: the best 1/ETA, rounded down (Hyperband's
    rule; ASHA's ceiling would send two of four on), at least one."""
    return max(1, trained // ETA)


def _first_rung(candidates: int, epochs: list[int]) -> int:
    """A lone candidate has no one to be compared with: it starts at the last rung."""
    return len(epochs) - 1 if candidates == 1 else 0


def _next_rung(k: int, epochs: list[int], alive: Sequence[CandidateRun],
               reached: dict[str, tuple[ModelVersion, float]], left_s: float | None) -> int | None:
    """The rung after ``k`` (None: done). A lone survivor skips to the last rung, or under a time
    limit to the last one its measured speed fits in ``left_s`` (at least the next: the loop
    stops it if even that does not fit)."""
    if k >= len(epochs) - 1 or not alive:
        return None
    if len(alive) > 1:
        return k + 1
    per_epoch = reached[alive[0].ref][1] if alive[0].ref in reached else 0.0
    fits = [j for j in range(k + 1, len(epochs))
            if left_s is None or per_epoch * (epochs[j] - epochs[k]) <= left_s]
    return fits[-1] if fits else k + 1


def schedule(candidates: int, epochs: int) -> tuple[tuple[int, int], ...]:
    """(candidates trained, cumulative epochs) of each rung when nothing fails and no time limit
    stops it (what the plan line shows)."""
    rungs = rung_epochs(epochs)
    out, alive, k = [], candidates, _first_rung(candidates, rungs)
    while True:
        out.append((alive, rungs[k]))
        if k == len(rungs) - 1:
            return tuple(out)
        alive = survivors(alive)
        k = len(rungs) - 1 if alive == 1 else k + 1


def serial_trainer(ctx: Context, jobs: Sequence[Job]) -> list[ModelVersion | BaseException]:
    """Train ``jobs`` one after another in this process."""
    from harness.train.finetune import finetune

    out: list[ModelVersion | BaseException] = []
    for job in jobs:
        quiet = ctx.replace(progress=ctx.progress.child(lines=False, prefix=f"{job.run.label} "))
        try:
            out.append(finetune(quiet, job.start, job.task, job.recipe, source=job.source).version)
        except Exception as exc:  # one candidate's failure is its row's, the others go on
            out.append(exc)
    return out


def run_halving(ctx: Context, plan: Plan, runs: Sequence[CandidateRun], limit_s: float | None, trainer: Trainer,
                parallel: int = 1) -> None:
    """Train ``runs`` by successive halving (within ``limit_s`` seconds when given); each run's model
    lands in ``run.prepared[0]``. A rung model already in the store (same row fingerprint and rung)
    is reused: the rungs are deterministic, so a rerun costs nothing, with or without a limit. The
    first chunk trains whatever the limit, so a limit smaller than one rung still yields a model."""
    from harness.select.estimate import duration_text

    began = time.perf_counter()
    epochs = rung_epochs(plan.recipe.epochs)
    reached: dict[str, tuple[ModelVersion, float]] = {}  # ref -> (version at its last rung, s/epoch)
    reused: set[str] = set()  # refs whose last rung came from the store
    alive = list(runs)
    spent = "" if limit_s is None else f" of {duration_text(limit_s)}"

    def fits(chunk: list[Job], k: int) -> bool:
        # the first chunk of all always runs: a limit too small for anything still yields one model
        need = max((reached[j.run.ref][1] * j.recipe.epochs for j in chunk), default=0.0) if k else 0.0
        return limit_s is None or not reached or time.perf_counter() - began + need <= limit_s

    k: int | None = _first_rung(len(alive), epochs)
    while k is not None:
        jobs = [_job(ctx, plan, run, k, epochs, reached) for run in alive]
        todo = [job for job in jobs if not _reuse(ctx, plan, job, reached, reused)]
        chunks = [todo[i:i + parallel] for i in range(0, len(todo), parallel)]
        trained = len(jobs) - len(todo)
        rung = f"rung {k + 1}/{len(epochs)} ({counted(epochs[k], 'epoch')})"
        if not trained and chunks and not fits(chunks[0], k):
            ctx.progress.info(f"successive halving: {rung} does not fit in what is left of the limit; stopped at "
                              f"{time.perf_counter() - began:.0f}s{spent}")
            break
        ctx.progress.info(f"successive halving: {rung} for up to {len(jobs)} candidate(s), "
                          f"{time.perf_counter() - began:.0f}s{spent} spent")
        for chunk in chunks:
            if not fits(chunk, k):
                break  # in order of validation score: what follows would not fit either
            _train_chunk(ctx, plan, chunk, trainer, reached, reused)
            trained += len(chunk)
        if not trained:
            break
        alive = _best(plan, alive, reached)
        left = None if limit_s is None else limit_s - (time.perf_counter() - began)
        k = _next_rung(k, epochs, alive, reached, left)
    _finish(runs, reached, reused)
    ctx.progress.info(f"successive halving: search took {time.perf_counter() - began:.0f}s{spent}")


def _train_chunk(ctx: Context, plan: Plan, chunk: list[Job], trainer: Trainer,
                 reached: dict[str, tuple[ModelVersion, float]], reused: set[str]) -> None:
    """Train the jobs of ``chunk`` side by side (those a concurrent select did not store meanwhile)."""
    with _claimed(ctx, plan, chunk):  # a concurrent select on this store waits, then reuses
        fresh = [job for job in chunk if not _reuse(ctx, plan, job, reached, reused)]
        started = time.perf_counter()
        results = trainer(ctx, fresh) if fresh else []
        seconds = time.perf_counter() - started
        for job, result in zip(fresh, results, strict=True):
            _record(ctx, job, result, seconds, reached)  # a chunk's jobs ran side by side
            reused.discard(job.run.ref)


def _best(plan: Plan, alive: list[CandidateRun], reached: dict[str, tuple[ModelVersion, float]]) -> list[CandidateRun]:
    """The survivors of a rung: the best :func:`survivors` of those it scored, by validation."""
    scored = [r for r in alive if r.ok and r.ref in reached]
    sign = 1 if plan.primary.higher_is_better else -1
    scored.sort(key=lambda r: -sign * _val(reached[r.ref][0], plan.primary.name))
    return scored[: survivors(len(scored))]


def _finish(runs: Sequence[CandidateRun], reached: dict[str, tuple[ModelVersion, float]], reused: set[str]) -> None:
    """Each run's model is its last rung's; a run that never trained failed for want of time."""
    for run in runs:
        if run.ok and run.ref not in reached:
            run.fail("train", UsageError("the time limit was spent before its first rung"))
        elif run.ok:
            run.prepared[0] = reached[run.ref][0]
            run.prepared_cached = run.ref in reused


def _job(ctx: Context, plan: Plan, run: CandidateRun, k: int, epochs: list[int],
         reached: dict[str, tuple[ModelVersion, float]]) -> Job:
    """Rung ``k`` of ``run``: from the candidate itself, or continued from its previous rung's model."""
    from harness.select.stages import seed_fingerprints

    # a rung is scored once, at its end: no validation pass per epoch (a cosine rung's last epoch is its best)
    base = plan.recipe.replace(seed=0, keep_epoch="last" if plan.recipe.patience is None else "best")
    row = seed_fingerprints(ctx, plan, run.ref)[0][1]
    if run.ref not in reached:  # its first rung (the last one for a lone candidate)
        info = {"rung": k + 1, "rungs": len(epochs), "epochs": epochs[k], "of_epochs": epochs[-1],
                "fingerprint": rung_fingerprint(row, k + 1, len(epochs))}
        return Job(run, run.ref, base.replace(epochs=epochs[k]), plan.task, info, plan.model(ctx, run.ref))
    previous = reached[run.ref][0]
    done = int(previous.metrics.get(keys.HALVING, {}).get("epochs") or epochs[k - 1])
    info = {"rung": k + 1, "rungs": len(epochs), "epochs": epochs[k], "of_epochs": epochs[-1],
            "fingerprint": rung_fingerprint(row, k + 1, len(epochs), done), "from_epochs": done}
    recipe = base.replace(epochs=epochs[k] - done, warmup_epochs=0.0,
                          backbone_lr_mult=previous.recipe.get("backbone_lr_mult"))
    return Job(run, previous.ref, recipe, plan.task, info)


@contextlib.contextmanager
def _claimed(ctx: Context, plan: Plan, jobs: Sequence[Job]) -> Iterator[None]:
    """Hold the claims (harness/select/claims.py) on the rung fingerprints of ``jobs``, taken in
    sorted order so two selections claiming overlapping chunks cannot deadlock."""
    from harness.select.claims import claim

    with contextlib.ExitStack() as stack:
        if plan.config.use_cache:
            for job in sorted(jobs, key=lambda j: j.halving["fingerprint"]):
                stack.enter_context(claim(ctx.store.home, job.halving["fingerprint"], ctx.progress, job.run.label))
        yield


def rung_fingerprint(row: str, rung: int, rungs: int, after: int | None = None) -> str:
    """The cache key of a rung model: its row's fingerprint, the rung and the epochs it continued
    from (a rung reached by skipping is another model; never a full run's key)."""
    return f"{row}-rung{rung}of{rungs}" + (f"-from{after}" if after else "")


def _reuse(ctx: Context, plan: Plan, job: Job, reached: dict[str, tuple[ModelVersion, float]],
           reused: set[str]) -> bool:
    """Take ``job``'s model from the store when an earlier selection trained that rung."""
    from harness.select.cache import cached_version

    if not plan.config.use_cache:
        return False
    version = cached_version(ctx, plan.task.name, job.halving["fingerprint"])
    if version is None or version.metrics.get(keys.HALVING, {}).get("rung") != job.halving["rung"]:
        return False
    seconds = float(version.metrics.get(keys.TRAIN, {}).get("seconds") or 0.0)
    reached[job.run.ref] = (version, seconds / max(job.recipe.epochs, 1))
    reused.add(job.run.ref)
    ctx.progress.info(f"{job.run.label}: rung {job.halving['rung']}/{job.halving['rungs']} cached as {version.ref}")
    return True


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
    version = ctx.store.set_tags(version.ref, {keys.TAG_FINGERPRINT: job.halving["fingerprint"]})
    per_epoch = seconds / max(job.recipe.epochs, 1)  # wall time, data loading included
    reached[run.ref] = (version, per_epoch)
    ctx.progress.info(f"{run.label}: rung {job.halving['rung']}/{job.halving['rungs']} "
                      f"({job.halving['epochs']} ep) val {_val(version, ''):.4f}")


def _val(version: ModelVersion, primary: str) -> float:
    values = version.metrics.get(keys.VAL, {})
    value = values.get(primary) if primary else next(iter(values.values()), None)
    return float(value) if value is not None and math.isfinite(value) else -math.inf
