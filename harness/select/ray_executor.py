"""The Ray executor: candidates x seeds as Ray tasks, on a local Ray instance or a cluster.

Training runs in Ray workers (:func:`harness.jobs.trial.run_trial`, with declared CPUs/GPUs per
trial); each returns its weights and record, and the driver registers it, so the store has one
writer. A worker that dies (killed, out of memory) is retried once by Ray; a second death, or an
error in training, becomes that candidate's failed row while the others go on. Export, parity and
the latency benchmark then run on the driver, one candidate at a time, so every latency in the
table comes from one machine. ``ray`` is the optional extra ``imgcls-harness[ray]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from harness.jobs.trial import (
    PASSED_ENV,
    PretrainSpec,
    TrialResult,
    make_spec,
    register_result,
    run_pretrain_trial,
    run_trial,
)
from harness.select.stages import STAGES, CandidateRun, Plan, run_stages, seed_fingerprints
from registry import UsageError, first_line, keys

if TYPE_CHECKING:
    from harness.context import Context
    from harness.select.halving import Job
    from registry.store import ModelVersion


T = TypeVar("T")


def require_ray() -> Any:
    """The ``ray`` module, or a usage error naming the extra."""
    try:
        import ray
    except ImportError:
        raise UsageError("{param} ray needs Ray: pip install 'imgcls-harness[ray]'", param="executor") from None
    return ray


def _remote_trial(spec: Any, weights: bytes | None) -> TrialResult:
    return run_trial(spec, weights)


def _remote_pretrain(spec: Any) -> TrialResult:
    return run_pretrain_trial(spec)


@dataclass
class RayExecutor:
    """Train on Ray; finish (export, parity, bench) on the driver."""

    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    local_cpus: int | None = None  # a local instance's CPUs (default: all)

    def __post_init__(self) -> None:
        require_ray()
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise UsageError("{param} must be positive (and {param:gpus_per_trial} not negative)",
                             param="cpus_per_trial")

    @contextlib.contextmanager
    def session(self, ctx: Context) -> Iterator[None]:
        """Ray connected for the block: a local instance started (and stopped after) when none is
        running, else the one running is used. A caller with several rounds of work (successive
        halving's rungs) holds one session around them all, so Ray and its workers start once, not
        once per rung (about 10 s each on 2 cores). Ray's own messages (a worker died, a task is
        retried) go to stderr, since stdout is for results."""
        ray = require_ray()
        with contextlib.redirect_stdout(sys.stderr):
            started = self._start(ray)
            if started:
                ctx.progress.info(f"Ray: connected to {self.address}" if self.address else
                                  f"Ray: started a local instance ({ray.cluster_resources().get('CPU', 0):g} CPUs)")
            try:
                yield
            finally:
                if started:
                    ray.shutdown()

    def _start(self, ray: Any) -> bool:
        """Connect (or start a local instance); True when this call started it."""
        if ray.is_initialized():
            return False
        threads = str(max(1, int(self.cpus_per_trial)))
        env = {k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)}
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "runtime_env": {"env_vars": {**env, "OMP_NUM_THREADS": threads}}}
        if self.address:
            ray.init(address=self.address, **options)
        else:
            ray.init(num_cpus=self.local_cpus, object_store_memory=256 * 1024 * 1024, **options)
        return True

    def run(self, ctx: Context, plan: Plan, runs: Sequence[CandidateRun]) -> list[CandidateRun]:
        ray = require_ray()
        work = []  # (run, the seeds the store does not hold yet); cached rows need no Ray
        for run in runs:
            if run.prepared:  # trained already (select --time-limit's rungs)
                continue
            try:
                todo = self._todo(ctx, plan, run)
            except Exception as exc:  # a candidate that cannot be resolved is its row's failure
                run.fail("train", exc)
                continue
            if todo:
                work.append((run, todo))
        if work:
            with self.session(ctx):
                self._train_all(ray, ctx, plan, work)
        return [run_stages(ctx, plan, run, STAGES) if run.ok else run for run in runs]

    @staticmethod
    def _todo(ctx: Context, plan: Plan, run: CandidateRun) -> list[tuple[int, Any, str]]:
        """(seed, recipe, fingerprint) of the seeds of ``run`` that the store does not hold yet."""
        return [(seed, recipe, fp) for seed, (recipe, fp) in enumerate(seed_fingerprints(ctx, plan, run.ref))
                if not (plan.config.use_cache and ctx.store.find_by_tag(keys.TAG_FINGERPRINT, fp, plan.task.name))]

    @property
    def parallel(self) -> int:
        """Trials that run at once (a local instance's CPUs over the CPUs per trial)."""
        return max(1, int((self.local_cpus or os.cpu_count() or 1) // self.cpus_per_trial))

    def train_jobs(self, ctx: Context, jobs: Sequence[Job]) -> list[ModelVersion | BaseException]:
        """Fine-tunings (``select --time-limit``'s rungs, ``study transfer``'s runs) as Ray tasks, all
        at once; each registered here as it comes back."""
        ray = require_ray()
        with self.session(ctx):
            remote = ray.remote(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial,
                                max_retries=1)(_remote_trial)
            refs: list[Any] = []
            for job in jobs:
                try:
                    spec, weights = make_spec(ctx, job.task_name, job.start, job.recipe.as_dict(), job.source)
                    refs.append(remote.remote(spec, ray.put(weights)))
                except Exception as exc:  # this job cannot be sent; the others go
                    refs.append(exc)

            def register(job: Job, result: TrialResult) -> ModelVersion:
                ctx.progress.info(f"{job.run.label}: trained on {result.host} in {result.seconds:.1f}s")
                return register_result(ctx, job.start, result, job.task_name, {}, job.source)

            return _collect(ray, list(zip(jobs, refs, strict=True)), register)

    def pretrain_jobs(self, ctx: Context, jobs: Sequence[tuple[str, PretrainSpec, str]]
                      ) -> list[ModelVersion | BaseException]:
        """``zoo build``'s pretrainings, ``(label, spec, registry name)`` each, as Ray tasks; registered here."""
        ray = require_ray()
        with self.session(ctx):
            remote = ray.remote(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial,
                                max_retries=1)(_remote_pretrain)
            refs = [remote.remote(spec) for _, spec, _ in jobs]

            def register(job: tuple[str, PretrainSpec, str], result: TrialResult) -> ModelVersion:
                label, spec, name = job
                ctx.progress.info(f"{label}: pretrained on {result.host} in {result.seconds:.1f}s")
                return register_result(ctx, spec.backbone, result, name, {})

            return _collect(ray, list(zip(jobs, refs, strict=True)), register)

    def _train_all(self, ray: Any, ctx: Context, plan: Plan,
                   work: Sequence[tuple[CandidateRun, list[tuple[int, Any, str]]]]) -> None:
        import time

        remote = ray.remote(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial, max_retries=1)(_remote_trial)
        pending: dict[Any, tuple[CandidateRun, int, str, float]] = {}
        for run, todo in work:
            try:
                spec, weights = make_spec(ctx, plan.task.name, run.ref, todo[0][1].as_dict(), plan.model(ctx, run.ref))
                shared = ray.put(weights)  # once per candidate, not once per seed
            except Exception as exc:  # this candidate cannot be sent; the others go on
                run.fail("train", exc)
                continue
            for seed, recipe, fp in todo:
                seeded = dataclasses.replace(spec, recipe=recipe.as_dict())
                pending[remote.remote(seeded, shared)] = (run, seed, fp, time.perf_counter())
                ctx.progress.info(f"{run.label}: fine-tune (seed {seed}) sent to Ray")
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            run, seed, fp, sent = pending.pop(done[0])
            try:
                result: TrialResult = ray.get(done[0])
            except Exception as exc:  # the worker died twice, or training raised
                if run.ok:
                    run.fail("train", RuntimeError(f"Ray worker: {_reason(exc)}"))
                    ctx.progress.info(f"{run.label}: FAILED in train (seed {seed}): {run.failure}")
                continue
            run.seconds["train"] = run.seconds.get("train", 0.0) + result.seconds
            if not run.ok:
                continue
            version = register_result(ctx, run.ref, result, plan.task.name, {keys.TAG_FINGERPRINT: fp},
                                      plan.model(ctx, run.ref))
            run.prepared[seed] = version
            ctx.progress.info(f"{run.label}: seed {seed} trained on {result.host} in {result.seconds:.1f}s "
                              f"(waited {time.perf_counter() - sent:.1f}s) -> {version.ref}")


def _collect(ray: Any, sent: list[tuple[T, Any]], register: Callable[[T, TrialResult], ModelVersion]
             ) -> list[ModelVersion | BaseException]:
    """Each job's Ray result registered, in order; a job that could not be sent (its ref is the
    exception), whose worker died twice or whose training raised gives its exception instead."""
    out: list[ModelVersion | BaseException] = []
    for job, ref in sent:
        if isinstance(ref, BaseException):
            out.append(ref)
            continue
        try:
            out.append(register(job, ray.get(ref)))
        except Exception as exc:  # this job failed; the others go on
            out.append(RuntimeError(f"Ray worker: {_reason(exc)}"))
    return out


def _reason(exc: BaseException) -> str:
    """One line for a Ray error: the task's own error when it raised, else what happened to the worker."""
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return first_line(cause)
    name = type(exc).__name__
    if "WorkerCrashed" in name or "died" in str(exc).lower():
        return "the worker process died twice (killed or out of memory); see the Ray logs"
    return f"{name}: {first_line(exc)}"
