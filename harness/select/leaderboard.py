"""Leaderboards: the rows of a task's latest selection per candidate, read from the store, and
rendered as text tables, CSV, JSON or a plot. ``select`` prints its rows the same way."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.output import TABLE_FORMATS, render
from harness.select.choose import sort_rows
from harness.select.row import HEAD_COLUMNS, LOWER_IS_BETTER, SORTABLE, TAIL_COLUMNS, LeaderboardRow, row_from_versions
from registry import Metric, Task, UnknownNameError, UsageError, keys
from registry.store import ModelVersion

if TYPE_CHECKING:
    from harness.context import Context

LEADERBOARD_FORMATS = ("table", *TABLE_FORMATS, "csv", "json")
"""What ``select`` and ``leaderboard`` print: :data:`harness.output.FORMATS` and the extra table styles."""


def group_key(version: ModelVersion) -> str:
    """The selection a version last belonged to; keys sort by time (see ``new_group``)."""
    return version.tags.get(keys.TAG_SELECT_GROUP) or f"{int(version.created_at * 1e9):020d}-v{version.id}"


def new_group() -> str:
    """A fresh group key for one selection: the time in ns first, so later ones sort last."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


def latest_groups(versions: Sequence[ModelVersion]) -> dict[str, list[ModelVersion]]:
    """Per candidate, the versions of its most recent selection (its seeds share a group key)."""
    by_candidate: dict[str, list[ModelVersion]] = {}
    for version in versions:
        if version.tags.get(keys.TAG_SELECT) == "1":
            by_candidate.setdefault(version.tags.get(keys.TAG_CANDIDATE, version.backbone), []).append(version)
    latest = {}
    for candidate, found in by_candidate.items():
        newest = max(group_key(v) for v in found)
        latest[candidate] = [v for v in found if group_key(v) == newest]
    return latest


def rows_from_store(ctx: Context, task_name: str, candidates: Collection[str] | None = None) -> list[LeaderboardRow]:
    """One row per candidate that ``select`` ran for ``task_name``, best first; only those of
    ``candidates`` when given (one selection's, not every earlier selection's)."""
    task = ctx.catalogue.task(task_name)
    primary = ctx.catalogue.metrics.get(task.primary_metric)
    groups = latest_groups(ctx.store.list(task=task.name))
    if candidates is not None:
        groups = {candidate: found for candidate, found in groups.items() if candidate in candidates}
    rows = [row_from_versions(candidate, versions, primary.name, primary.higher_is_better)
            for candidate, versions in groups.items()]
    return sort_rows(compare_rows(ctx, primary, rows), "val", primary.higher_is_better)


def compare_rows(ctx: Context, primary: Metric, rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Stored rows with the Pareto front, each row's paired difference with the best on validation
    (and whether it is tied), and with the chosen model (the ``TASK:best`` alias) on test, as select
    showed them; the choice itself stays the one select recorded."""
    import dataclasses

    from harness.select.choose import decide
    from harness.select.compare import RowPredictions, row_comparer, with_test_diffs
    from harness.select.config import Constraints

    predictions = RowPredictions(ctx)
    marked, _ = decide(rows, primary.higher_is_better, Constraints(), "best",
                       row_comparer(ctx, primary, "val", predictions))
    marked = [dataclasses.replace(m, chosen=r.chosen, excluded=None) for m, r in zip(marked, rows, strict=True)]
    chosen = next((r for r in marked if r.chosen), None)
    if chosen is None:
        return marked
    return with_test_diffs(ctx, primary, marked, chosen, predictions)


def sort_direction(ctx: Context, task: Task, key: str) -> bool:
    """Whether ``--sort key`` ranks high values first; a key that is neither one of ``task``'s
    metrics nor a sortable column raises with suggestions."""
    if key in task.metrics:
        return ctx.catalogue.metrics.get(key).higher_is_better
    if key == "val":  # the primary metric on validation
        return ctx.catalogue.metrics.get(task.primary_metric).higher_is_better
    if key not in SORTABLE:
        raise UnknownNameError("sort column", key, [*SORTABLE, *task.metrics],
                               hint=f"sort by a metric of task {task.name} ({', '.join(task.metrics)}) or by one "
                                    "of: " + ", ".join(SORTABLE))
    return key not in LOWER_IS_BETTER


def columns_for(rows: Sequence[dict[str, Any]], primary: str) -> list[str]:
    """The columns some row fills, in a fixed order; an empty board still names its key columns."""
    if not rows:
        return [*HEAD_COLUMNS, primary]
    metrics = [k for r in rows for k in r if k not in HEAD_COLUMNS and k not in TAIL_COLUMNS]
    wanted = [*HEAD_COLUMNS, *dict.fromkeys([primary, f"{primary}_ci95", *metrics]), *TAIL_COLUMNS]
    present = {k for r in rows for k, v in r.items() if v is not None and v != ""}
    return [c for c in dict.fromkeys(wanted) if c in present]


def render_rows(rows: Sequence[LeaderboardRow], fmt: str, primary: str, *, wide: bool = False,
                columns: Sequence[str] | None = None) -> str:
    """Rows in any of :data:`LEADERBOARD_FORMATS`. ``table`` is the compact view for people (see
    :mod:`harness.select.view`) unless ``wide`` or ``columns``; the others keep every column."""
    from harness.select.view import compact

    if fmt not in LEADERBOARD_FORMATS:
        raise UsageError(f"{{param}} must be one of {', '.join(LEADERBOARD_FORMATS)}", param="fmt")
    data = [r.as_dict() for r in rows]
    if fmt == "json":
        return render(data, "json")
    if fmt == "table" and not wide and not columns:
        return compact(rows, primary)
    if fmt != "csv":
        data = [{k: ("yes" if v else "") if isinstance(v, bool) else v for k, v in d.items()} for d in data]
    if columns:
        known = {k for d in data for k in d} | set(columns_for(data, primary))
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise UnknownNameError("column", unknown[0], known)
    return render(data, "github" if fmt == "table" else fmt, list(columns) if columns else columns_for(data, primary))


def board_as_dict(task: str, primary: str, rows: Sequence[LeaderboardRow], sorted_by: str | None = None
                  ) -> dict[str, Any]:
    """``leaderboard --format json``: the same object as ``select --format json`` for the keys both
    have (``task``, ``primary_metric``, ``chosen_on``, ``eval_sets``, ``rows``, ``winner``,
    ``units``), plus ``sorted_by``; select's own keys (budget, timings, rank checks) it has not."""
    from harness.select.row import UNITS_NOTE

    chosen = next((r for r in rows if r.chosen), None)
    return {"task": task, "primary_metric": primary, "chosen_on": "val",
            "eval_sets": {"val": sorted({r.val_set for r in rows if r.val_set}),
                          "test": sorted({r.test_set for r in rows if r.test_set})},
            "rows": [r.as_dict() for r in rows], "winner": chosen.model if chosen else None,
            "sorted_by": sorted_by, "units": UNITS_NOTE}


def _latency_quality(row: LeaderboardRow) -> tuple[float, float] | None:
    """A row's point on the plot (ONNX Runtime batch-1 ms, quality); None when it lacks either."""
    if row.ort_b1_ms is None or row.primary_value is None:
        return None
    return row.ort_b1_ms, row.primary_value


def plot(rows: Sequence[LeaderboardRow], primary: str, higher_is_better: bool, path: str | Path, title: str) -> Path:
    """Quality against ONNX Runtime batch-1 latency, the Pareto front joined."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("{param} needs matplotlib: pip install 'imgcls-harness[plot]'", param="plot_path") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r, xy) for r in rows if (xy := _latency_quality(r)) is not None]
    if not pts:
        raise UsageError("nothing to plot: no row has both a quality metric and a latency")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter([x for _, (x, _y) in pts], [y for _, (_x, y) in pts], color="tab:blue", zorder=3,
               label="candidate")
    for r, xy in pts:
        ax.annotate(r.candidate, xy, textcoords="offset points", xytext=(5, 4), fontsize=8)
    front = sorted((xy for r, xy in pts if r.pareto), key=lambda xy: xy[0])
    if front:
        ax.plot([x for x, _y in front], [y for _x, y in front], color="tab:red", zorder=4,
                marker="o", markerfacecolor="none", markersize=11, label="Pareto front")
    ax.legend(loc="best")
    ax.margins(x=0.15, y=0.1)
    ax.set_xlabel("ONNX Runtime latency, batch 1 (median ms)")
    ax.set_ylabel(f"{primary} ({'higher' if higher_is_better else 'lower'} is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
