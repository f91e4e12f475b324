"""What a report shows, gathered from the store: the leaderboard, each candidate's details, the data
check and the environment, as typed records the HTML renderer reads (and a notebook can too)."""

from __future__ import annotations

import platform
import shlex
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.context import Context
from harness.select.leaderboard import rows_from_store
from harness.select.row import LeaderboardRow
from registry import HarnessError, UsageError, keys
from registry.records import ModelVersion

if TYPE_CHECKING:
    from harness.evaluate.robustness import RobustnessReport
    from harness.predictions.calibration import Calibration, ReliabilityBin


@dataclass(frozen=True)
class CandidateDetail:
    """One leaderboard row's model: how it trained, how it scores per class, how to make it again."""

    row: LeaderboardRow
    version: ModelVersion | None
    history: list[dict[str, Any]] = field(default_factory=list)
    confusion: list[list[int]] | None = None
    per_class: list[dict[str, Any]] | None = None
    parity: dict[str, Any] | None = None
    command: str | None = None
    robustness: RobustnessReport | None = None
    calibration: Calibration | None = None
    reliability: dict[str, list[ReliabilityBin]] = field(default_factory=dict)  # "raw logits", "after T": test bins


@dataclass(frozen=True)
class ReportData:
    """Everything ``harness report`` renders for one task."""

    task: str
    dataset: str
    primary: str
    higher_is_better: bool
    rows: list[LeaderboardRow]
    details: list[CandidateDetail]
    class_names: tuple[str, ...]
    data_check: dict[str, Any] | None
    data_check_note: str | None
    environment: dict[str, Any]
    generated: str

    @property
    def winner(self) -> LeaderboardRow | None:
        """The chosen row (select marks it), or None when nothing met the constraints."""
        return next((r for r in self.rows if r.chosen), None)

    @property
    def chosen(self) -> str | None:
        """The chosen model's registry reference."""
        return self.winner.model if self.winner else None

    def to_dict(self) -> dict[str, Any]:
        """The report's content as JSON-ready data (rows as select's JSON rows)."""
        return {"task": self.task, "dataset": self.dataset, "primary_metric": self.primary, "chosen": self.chosen,
                "rows": self.to_rows(), "data_check": self.data_check, "environment": self.environment,
                "commands": {d.row.candidate: d.command for d in self.details if d.command}}

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per leaderboard row."""
        return [r.as_dict() for r in self.rows]


# recipe key -> finetune flag; each is written out, so the command does not depend on today's defaults
_FLAGS = (("strategy", "--strategy"), ("budget", "--budget"), ("epochs", "--epochs"),
          ("batch_size", "--batch-size"), ("lr", "--lr"), ("backbone_lr_mult", "--backbone-lr-mult"),
          ("optimizer", "--optimizer"), ("schedule", "--schedule"), ("warmup_epochs", "--warmup-epochs"),
          ("weight_decay", "--weight-decay"), ("label_smoothing", "--label-smoothing"),
          ("val_fraction", "--val-fraction"), ("patience", "--patience"), ("keep_epoch", "--keep-epoch"),
          ("train_limit", "--train-limit"),
          ("test_limit", "--test-limit"), ("input_size", "--input-size"), ("seed", "--seed"))


def reproduce_command(version: ModelVersion, task: str | None = None) -> str | None:
    """The ``harness finetune`` command that trains ``version`` again, from its recorded recipe;
    ``task`` is how a user spells its task when that differs from the stored name (a view)."""
    recipe = version.recipe
    source = recipe.get("source")
    if version.kind != "finetune" or not source or not version.task:
        return None
    words = ["harness", "finetune", str(source), "--task", task or version.task]
    for key, flag in _FLAGS:
        value = recipe.get(key)
        if value is None or (key == "strategy" and value == "full"):
            continue
        words += [flag, str(value)]
    if recipe.get("strategy") == "partial" and recipe.get("partial_blocks"):
        words += ["--blocks", str(recipe["partial_blocks"])]
    return " ".join(shlex.quote(w) for w in words)


def _detail(ctx: Context, row: LeaderboardRow) -> CandidateDetail:
    from harness.evaluate.robustness import stored_report

    if row.model is None:
        return CandidateDetail(row, None)
    try:
        version = ctx.store.get(row.model)
    except HarnessError:
        return CandidateDetail(row, None)
    metrics = version.metrics
    detail = metrics.get(keys.TEST_DETAIL) or {}
    calibration, reliability = _calibration(version)
    return CandidateDetail(row, version, history=list(metrics.get(keys.HISTORY) or []),
                           confusion=detail.get("confusion_matrix"), per_class=detail.get("per_class"),
                           parity=metrics.get(keys.PARITY), command=reproduce_command(version, _spelled(ctx, version)),
                           robustness=stored_report(version), calibration=calibration, reliability=reliability)


def _calibration(version: ModelVersion) -> tuple[Calibration | None, dict[str, list[ReliabilityBin]]]:
    """The version's temperature and test ECEs, and its reliability bins on test before and after T."""
    from harness.predictions.calibration import from_version, reliability, stored_calibration
    from harness.predictions.stored import load_predictions

    found = stored_calibration(version) or from_version(version)
    test = load_predictions(version).get("test")
    if test is None:
        return found, {}
    bins = {"raw logits": reliability(test.logits, test.labels)}
    if found is not None:
        bins[f"after T = {found.temperature:.3g}"] = reliability(test.logits, test.labels, found.temperature)
    return found, bins


def _spelled(ctx: Context, version: ModelVersion) -> str | None:
    """A view's task as the command line takes it (``synthetic:classes=0-4``, not the stored
    ``synthetic--classes-0-4``, which exists only in the process that made the view)."""
    from harness.data.views import view_chain

    if not version.task:
        return None
    try:
        base, texts = view_chain(ctx, version.task)
    except HarnessError:
        return None
    return ":".join([base, *texts])


def _data_check(ctx: Context, task: str) -> tuple[dict[str, Any] | None, str | None]:
    """Exact copies, label and integrity checks of the task's data (near copies are left to
    ``harness data check``: they cost minutes on large sets)."""
    from harness.data.check import check_target

    try:
        report, _ = check_target(ctx, task, near=False)
    except HarnessError as exc:
        return None, f"the data could not be read here ({exc}); the rest of the report is from the store"
    return report.as_dict(), None


def environment(versions: list[ModelVersion]) -> dict[str, Any]:
    """Where the chosen model was trained (as recorded), and where this report was written."""
    from harness import __version__

    trained = versions[0].environment if versions else {}
    return {"trained with": dict(trained),
            "report written with": {"harness": __version__, "python": platform.python_version(),
                                    "platform": platform.platform()}}


def collect(ctx: Context, task_name: str, *, data_check: bool = True,
            candidates: Collection[str] | None = None) -> ReportData:
    """The report of ``task_name`` from the store; refuses a task ``select`` has not run here.
    ``candidates``: only their rows (``select --report``: the selection just run, not earlier ones)."""
    task = ctx.catalogue.task(task_name)
    primary = ctx.catalogue.metrics.get(task.primary_metric)
    rows = rows_from_store(ctx, task.name, candidates)
    if not rows:
        raise UsageError(f"no select results for task {task.name!r} in {ctx.store.home}; run 'harness select "
                         f"--task {task.name}' first (or point HARNESS_HOME at the store that has them)")
    details = [_detail(ctx, row) for row in rows]
    found = [d.version for d in details if d.version is not None]
    winner = [d.version for d in details if d.version is not None and d.row.chosen]
    names = next((tuple(v.class_names) for v in found if v.class_names), ())
    checked, note = _data_check(ctx, task.name) if data_check else (None, "not run (--no-data-check)")
    return ReportData(task.name, task.dataset, primary.name, primary.higher_is_better, rows, details,
                      names, checked, note, environment(winner or found),
                      time.strftime("%Y-%m-%d %H:%M:%S %Z"))
