"""``select()``: the standard protocol over candidates, ending in a leaderboard and a chosen model.

The pipeline, one function each: resolve candidates (and skip those whose weights cannot be had),
plan what every candidate shares, prescreen (optional), run each candidate's stages (train,
export, parity, bench; see :mod:`harness.select.stages`), then choose (pure rules in
:mod:`harness.select.choose`) and move the ``TASK:best`` alias.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.environment import library_versions, select_device
from harness.select.candidates import Candidate, check_available, expand
from harness.select.choose import decide, sort_rows
from harness.select.config import SelectConfig
from harness.select.executor import Executor, SerialExecutor
from harness.select.leaderboard import new_group
from harness.select.rankcheck import RankCheck, rank_check
from harness.select.row import UNITS_NOTE, LeaderboardRow, skipped_row
from harness.select.stages import CandidateRun, Plan, row_of
from harness.train.recipe import recipe_for
from registry import DataError, Task, UsageError, keys

if TYPE_CHECKING:
    from harness.context import Context
    from harness.select.then import BudgetCheck
    from harness.track import TrackedRun


SETUP = "(setup)"
"""The key of ``stage_seconds`` for work shared by all candidates (data decoding and hash, prescreen)."""


@dataclass
class SelectResult:
    """The leaderboard of one selection, its winner, and how long each stage took."""

    task: str
    primary: str
    higher_is_better: bool
    rows: list[LeaderboardRow]
    winner: LeaderboardRow | None
    kendall_tau: float | None
    prescreen: str | None
    seconds: float
    skipped: list[LeaderboardRow] = field(default_factory=list)
    stage_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    rank_check: RankCheck | None = None
    budget: str = "quick"
    prefer: str = "best"
    earlier: SelectResult | None = None  # with --then: the first (smaller) budget's selection
    budget_check: BudgetCheck | None = None  # with --then: did the smaller budget's order hold?
    estimate_seconds: float | None = None  # what select estimated before training (None when quiet)
    robustness: bool | None = None  # the corruption suite: on, off, or None (where cheap)

    def robustness_note(self) -> str | None:
        """How to get the robustness columns when some row lacks them (None when every row has them)."""
        scored = [r for r in self.rows if r.status in ("ok", "cached")]
        missing = [r for r in scored if r.corruption_acc is None]
        if not missing:
            return None
        if self.robustness is False:
            return ("robustness not measured (--no-robustness): --robustness adds corruption_acc and robust_drop "
                    "(or 'harness robustness MODEL' for one model)")
        return (f"robustness: {len(missing)} of {len(scored)} rows not measured (the corruption suite would cost "
                "more than 10% of their training; notes say how much): --robustness measures every row")

    def time_summary(self) -> list[str]:
        """One line per candidate (and the shared setup): seconds per stage."""
        return [f"  {name}: " + ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in stages.items())
                + f" (total {sum(stages.values()):.1f}s)" for name, stages in self.stage_seconds.items()]

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (same as ``as_dict()``)."""
        return self.as_dict()

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per candidate row (skipped ones included), as the leaderboard shows them."""
        return [r.as_dict() for r in [*self.rows, *self.skipped]]

    def eval_sets(self) -> dict[str, list[str]]:
        """The distinct validation and test image sets of the rows (one each when all rows share them)."""
        return {"val": sorted({r.val_set for r in self.rows if r.val_set}),
                "test": sorted({r.test_set for r in self.rows if r.test_set})}

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "budget": self.budget, "primary_metric": self.primary,
                "chosen_on": "val", "prefer": self.prefer, "eval_sets": self.eval_sets(),
                "rows": [r.as_dict() for r in [*self.rows, *self.skipped]],
                "winner": self.winner.model if self.winner else None, "prescreen": self.prescreen,
                "kendall_tau": self.kendall_tau,
                "rank_check": self.rank_check.as_dict() if self.rank_check else None,
                "earlier": self.earlier.as_dict() if self.earlier else None,
                "budget_check": self.budget_check.as_dict() if self.budget_check else None,
                "seconds": self.seconds, "estimate_seconds": self.estimate_seconds,
                "stage_seconds": self.stage_seconds,
                "robustness": {"mode": {True: "on", False: "off", None: "auto"}[self.robustness],
                               "note": self.robustness_note()},
                "units": UNITS_NOTE}


def resolve_candidates(ctx: Context, config: SelectConfig, task: Task | None = None
                       ) -> tuple[list[Candidate], list[Candidate]]:
    """(runnable, unavailable) candidates; with ``offline``, any unavailable one is an error.
    ``task``: ``config.task`` looked up already (the selection does it once)."""
    task = task or ctx.catalogue.task(config.task)
    if not config.candidates:  # the task's own: a name in them that matches nothing is its plugin's mistake
        ctx.catalogue.check_candidates(task, task.protocol.candidates_for(config.budget))
    refs = expand(ctx, config.candidates or task.protocol.candidates_for(config.budget))
    if not refs:
        raise UsageError(f"task {task.name} has no candidates; pass {{param}}", param="candidates")
    checked = [check_available(ctx, ref, config.offline) for ref in refs]
    missing = [c for c in checked if not c.available]
    if config.offline and missing:
        lines = "; ".join(f"{c.ref}: place {c.place}" for c in missing)
        raise UsageError(f"{{param}}: {len(missing)} candidate(s) need files first: {lines}", param="offline")
    return [c for c in checked if c.available], missing


def make_plan(ctx: Context, config: SelectConfig, task: Task | None = None) -> Plan:
    """What every candidate shares: recipe, data hash, environment, device, a group tag."""
    from harness.evaluate.metrics import preflight
    from harness.select.cache import dataset_hash

    task = task or ctx.catalogue.task(config.task)
    preflight(ctx.catalogue, task, ctx.catalogue.datasets.get(task.dataset).num_classes or 10)
    halving = uses_halving(config, task.protocol.budgets[config.budget].halving_epochs)
    overrides = dict(config.recipe)
    if halving and overrides.get("epochs") is None:  # the rungs lead up to the budget's halving epochs
        overrides["epochs"] = task.protocol.budgets[config.budget].halving_epochs
    recipe = recipe_for(task, config.budget, **overrides)
    check_leakage(ctx, task, recipe.input_size or task.protocol.input_size, config.ignore_data_errors)
    data_id = dataset_hash(ctx, task.dataset, recipe.input_size or task.protocol.input_size)
    return Plan(config, task, ctx.catalogue.metrics.get(task.primary_metric), recipe, data_id, library_versions(),
                select_device(ctx.device).type, new_group(), halving)


def uses_halving(config: SelectConfig, budget_epochs: int | None) -> bool:
    """Successive halving: with a time limit, when asked, or by default where the budget has
    ``halving_epochs`` and one seed is trained (halving compares single runs)."""
    if config.time_limit_s is not None or config.halving is not None:
        return config.time_limit_s is not None or bool(config.halving)
    return budget_epochs is not None and config.seeds == 1


def check_leakage(ctx: Context, task: Task, size: int, ignore: bool) -> None:
    """Select's cheap data check, before any training: test images that are exact copies of
    training images make every score optimistic. On your own data that stops the run (unless
    ``ignore``); on a registered benchmark it is a warning (its splits are what they are)."""
    from harness.data.check import leaked_exact
    from harness.data.loading import load_split

    entry = ctx.catalogue.datasets.get(task.dataset)
    leaked = leaked_exact(load_split(ctx, task.dataset, "train", image_size=size),
                          load_split(ctx, task.dataset, "test", image_size=size))
    if not leaked:
        return
    spec = getattr(entry.loader, "spec", None)
    target = spec.data.uri if spec is not None else task.name
    message = (f"{leaked} test image(s) of {task.name} are exact copies of training images (train/test leakage); "
               f"see 'harness data check {target}'")
    if hasattr(entry.loader, "cache_token") and not ignore:
        raise DataError(message + "; fix the split ('harness data check --write-clean' writes a clean manifest) "
                                  "or pass {param} to go on anyway", param="ignore_data_errors")
    ctx.progress.warn(message)


def prescreen(ctx: Context, plan: Plan, runnable: list[Candidate]) -> tuple[dict[str, float], list[Candidate]]:
    """Scores per candidate; with ``top_k`` the rest are dropped (returned as unavailable rows)."""
    from harness.select.prescreen import prescreen_candidates

    config = plan.config
    assert config.prescreen is not None
    size = plan.recipe.input_size or plan.task.protocol.input_size
    scores = prescreen_candidates(ctx, plan.task, config.prescreen, [c.ref for c in runnable], size, plan.recipe.seed,
                                  lambda ref: plan.model(ctx, ref))
    if not config.top_k:
        return scores, []
    ranked = sorted(runnable, key=lambda c: scores.get(c.ref, -math.inf), reverse=True)
    dropped = [Candidate(c.ref, False, f"prescreen rank > top-{config.top_k} ({config.prescreen} "
                                       f"{scores.get(c.ref)})") for c in ranked[config.top_k:]]
    return {c.ref: scores[c.ref] for c in ranked[:config.top_k] if c.ref in scores}, dropped


def check_ranking(ctx: Context, method: str, rows: list[LeaderboardRow], scores: dict[str, float],
                  higher_is_better: bool, cut_from: int | None = None, plan: Plan | None = None) -> RankCheck:
    """The prescreen's order against the fine-tuned one on validation, next to the free baselines' orders
    (over the top-k survivors of ``cut_from`` candidates when --top-k cut the others); ``plan``
    holds the candidates resolved already."""
    from harness.select.prescreen import pretraining_score

    sign = 1 if higher_is_better else -1
    truth = {r.candidate: sign * r.val for r in rows if r.val is not None and math.isfinite(r.val)}
    params = {r.candidate: r.params_m for r in rows if r.params_m is not None}
    resolve = (lambda ref: plan.model(ctx, ref)) if plan is not None else None
    pretraining = {ref: value for ref in truth if (value := pretraining_score(ctx, ref, resolve)) is not None}
    return rank_check(method, scores, truth, {"parameter count": params, "pretraining score": pretraining},
                      cut_from)


def _run_candidates(ctx: Context, plan: Plan, runs: list[CandidateRun], executor: Executor) -> list[CandidateRun]:
    """Every candidate's stages by ``executor``; with a time limit, successive halving trains first."""
    if plan.halving:
        from harness.select.halving import run_halving, serial_trainer

        trainer = getattr(executor, "train_jobs", serial_trainer)
        session = getattr(executor, "session", None)  # one Ray session for every rung, not one per rung
        with session(ctx) if session is not None else contextlib.nullcontext():
            run_halving(ctx, plan, runs, plan.config.time_limit_s, trainer, getattr(executor, "parallel", 1))
    return executor.run(ctx, plan, runs)


def track_selection(ctx: Context, tracked: TrackedRun, rows: list[LeaderboardRow], winner: LeaderboardRow | None
                    ) -> None:
    """The leaderboard to the trackers (rows, and a CSV artifact), then the selection run's end."""
    import tempfile
    from pathlib import Path

    from harness.output import render

    data = [r.as_dict() for r in rows]
    ctx.tracking.select_finished(tracked, data, winner.model if winner else None)
    with tempfile.TemporaryDirectory(prefix="harness-track-") as tmp:
        path = Path(tmp) / "leaderboard.csv"
        path.write_text(render(data, "csv"))
        ctx.tracking.artifact(tracked, "leaderboard", path)
    ctx.tracking.finish(tracked, "FINISHED", winner.metrics if winner else {}, winner.model if winner else None)


def select(ctx: Context, config: SelectConfig, executor: Executor | None = None) -> SelectResult:
    """Run the protocol of ``config`` over its candidates; the winner gets the alias ``TASK:best``.

    With ``config.then``, the ``top_k`` best rows on validation are trained again at that larger
    budget, the model shipped is chosen among those, and ``budget_check`` says whether the smaller
    budget's order held (see :mod:`harness.select.then`)."""
    if config.then is None:
        return select_once(ctx, config, executor)
    from harness.select.then import select_then

    return select_then(ctx, config, executor)


def select_once(ctx: Context, config: SelectConfig, executor: Executor | None = None, *,
                set_alias: bool = True, task: Task | None = None) -> SelectResult:
    """One budget's selection: candidates, plan, prescreen, stages, the choice (see :func:`select`);
    ``task``: ``config.task`` looked up already."""

    started = time.perf_counter()
    ctx.store.require_writable()
    task = task or ctx.catalogue.task(config.task)  # looked up once; the stages get the object
    runnable, missing = resolve_candidates(ctx, config, task)
    plan = make_plan(ctx, config, task)
    plan = _fit_batch(ctx, plan)
    setup = {"data": time.perf_counter() - started}
    ctx.progress.info(f"select on {plan.task.name} ({config.budget}): {len(runnable)} candidates"
                      + (f", {len(missing)} skipped" if missing else ""))
    scores: dict[str, float] = {}
    cut_from = len(runnable) if config.prescreen and config.top_k else None
    if config.prescreen:
        begin = time.perf_counter()
        scores, dropped = prescreen(ctx, plan, runnable)
        setup["prescreen"] = time.perf_counter() - begin
        runnable = [c for c in runnable if c.ref not in {d.ref for d in dropped}]
        missing += dropped
    runs = [CandidateRun(c.ref, f"[{i}/{len(runnable)}] {c.ref}", scores.get(c.ref))
            for i, c in enumerate(runnable, 1)]
    estimated = announce(ctx, plan, [c.ref for c in runnable])
    params = {"budget": config.budget, "seeds": config.seeds, "prescreen": config.prescreen,
              "candidates": [c.ref for c in runnable], **plan.recipe.as_dict()}
    with (ctx.tracking.running(f"select {plan.task.name}", "select", plan.task.name, params) as tracked,
          ctx.tracking.child_of(tracked), ctx.tracking.holding()):  # candidates' runs end after their benchmark
        runs = _run_candidates(ctx, plan, runs, executor or SerialExecutor())
    begin = time.perf_counter()
    rows, winner = choose(ctx, plan, [row_of(ctx, plan, r) for r in runs])
    setup["compare"] = time.perf_counter() - begin
    if winner is not None and winner.model is not None and set_alias:
        ctx.store.set_alias(winner.model, keys.ALIAS_BEST)
    skipped = [skipped_row(c.ref, plan.primary.name, c.reason, c.place) for c in missing]
    checked = (check_ranking(ctx, config.prescreen, rows, scores, plan.primary.higher_is_better, cut_from, plan)
               if config.prescreen else None)
    if tracked:
        track_selection(ctx, tracked, rows, winner)
    return SelectResult(plan.task.name, plan.primary.name, plan.primary.higher_is_better,
                        sort_rows(rows, "val", plan.primary.higher_is_better), winner,
                        checked.prescreen.kendall if checked else None, config.prescreen,
                        round(time.perf_counter() - started, 1), skipped,
                        {SETUP: {k: round(v, 2) for k, v in setup.items()},
                         **{r.ref: {k: round(v, 2) for k, v in r.seconds.items()} for r in runs}}, checked,
                        config.budget, config.prefer, estimate_seconds=estimated, robustness=config.robustness)


def _fit_batch(ctx: Context, plan: Plan) -> Plan:
    """A batch larger than the training split would fail every candidate: the user's
    ``--batch-size`` is refused before any trains; the budget's own is lowered, as the study does
    (a quarter of the images, at least 4), and said."""
    recipe, n_train = plan.recipe, plan.split_sizes(ctx)[0]
    if n_train >= recipe.batch_size:
        return plan
    if plan.config.recipe.get("batch_size") is not None:
        raise UsageError(f"only {n_train} training images for batch size {recipe.batch_size}; lower {{param}}",
                         param="batch_size")
    smaller = min(n_train, max(4, n_train // 4))
    ctx.progress.info(f"only {n_train} training images: batch {smaller} instead of the budget's "
                      f"{recipe.batch_size} (--batch-size sets it)")
    return dataclasses.replace(plan, recipe=recipe.replace(batch_size=smaller))


def announce(ctx: Context, plan: Plan, refs: list[str]) -> float | None:
    """Print the plan and the time it should take on this machine (measured: see
    :mod:`harness.select.estimate`) before the first candidate trains; the estimated seconds, or
    None when nothing is printed (quiet: the probe would cost time for no reader)."""
    if ctx.progress.quiet or not ctx.progress.lines or not refs:
        return None
    from harness.select.estimate import estimate

    planned = estimate(ctx, plan, refs, plan.config.time_limit_s)
    for line in planned.lines():
        ctx.progress.info(line)
    return round(planned.seconds, 1)


def choose(ctx: Context, plan: Plan, rows: list[LeaderboardRow]) -> tuple[list[LeaderboardRow], LeaderboardRow | None]:
    """The choice on validation (paired comparisons with the best, ``prefer`` among the tied), then
    every row's paired difference with the chosen one on test, for the report."""
    from harness.select.compare import RowPredictions, row_comparer, with_test_diffs

    predictions = RowPredictions(ctx)
    rows, winner = decide(rows, plan.primary.higher_is_better, plan.config.constraints, plan.config.prefer,
                          row_comparer(ctx, plan.primary, "val", predictions))
    if winner is None:
        return rows, None
    rows = with_test_diffs(ctx, plan.primary, rows, winner, predictions)
    return rows, next(r for r in rows if r.chosen)
