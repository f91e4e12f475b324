"""The leaderboard as a person reads it: the columns one decides with, fitting 120 characters,
with reasons and file paths as numbered notes under the table instead of inside it.

Machine formats (JSON, CSV) and the export formats (github, latex, html, ...) keep every column;
``--wide`` shows every column as a table too, ``--columns`` picks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.output import render
from harness.select.row import LeaderboardRow

LEGEND = ("flags: * chosen, P on the Pareto front (quality vs ORT batch-1 latency), x excluded, ! failed or skipped, "
          "~ latency measured on a busy machine or too noisy")


def _flags(row: LeaderboardRow) -> str:
    marks = (("*", row.chosen), ("P", bool(row.pareto)), ("x", bool(row.excluded)),
             ("!", row.status in ("failed", "skipped")), ("~", bool(row.timing)))
    return "".join(mark for mark, on in marks if on)


def _note(row: LeaderboardRow) -> str:
    parts = [f"time limit: reached rung {row.rung}" if row.rung else None,
             f"excluded: {row.excluded}" if row.excluded else None,
             f"failed in {row.stage}" if row.stage else None, row.reason,
             f"latency unreliable: {row.timing}" if row.timing else None,
             f"place {row.place}" if row.place else None]
    return "; ".join(p for p in parts if p)


def _quality(row: LeaderboardRow) -> str:
    value = row.primary_value
    if value is None:
        return ""
    return f"{value:.4f}" + (f" ±{row.ci95:.4f}" if row.ci95 else "")


SECONDARY_SHOWN = 1
"""How many quality metrics besides the primary fit the compact table in 120 columns (macro F1 first);
the rest are named under the table, and every other format shows them all."""


def secondary_metrics(rows: Sequence[LeaderboardRow], primary: str) -> tuple[list[str], list[str]]:
    """(shown, folded): the quality metrics other than ``primary`` that some row has, in the task's order."""
    names = list(dict.fromkeys(k for r in rows for k in r.metrics if k != primary))
    names.sort(key=lambda n: n != "macro_f1")
    return names[:SECONDARY_SHOWN], names[SECONDARY_SHOWN:]


def compact(rows: Sequence[LeaderboardRow], primary: str) -> str:
    """The default table: candidate, quality (± 95% CI), one more quality metric, ORT latency and
    throughput, size, parity, flags; then the numbered notes, the metrics with no room, the legend."""
    table: list[dict[str, Any]] = []
    notes: list[str] = []
    shown, folded = secondary_metrics(rows, primary)
    for r in rows:
        text = _note(r)
        if text:
            notes.append(f"[{len(notes) + 1}] {r.candidate}: {text}")
        line: dict[str, Any] = {"candidate": r.candidate, primary: _quality(r)}
        for name in shown:
            value = r.metrics.get(name)
            line[name] = "" if value is None else f"{value:.4f}"
        line.update({"ORT b1 ms": r.ort_b1_ms, "img/s b32": r.ort_b32_img_s, "params M": r.params_m,
                     "ONNX MB": r.size_mb, "parity": r.parity, "flags": _flags(r),
                     "note": f"[{len(notes)}]" if text else ""})
        table.append(line)
    if not table:
        return render([], "simple", ["candidate", primary])
    more = [f"more metrics: {', '.join(folded)} (shown by --wide, --columns and every --format)"] if folded else []
    return "\n".join([render(table, "simple"), "", *notes, *more, LEGEND])


def pick(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Only ``columns`` of each row (``--columns``), in that order."""
    return [{c: r.get(c) for c in columns} for r in rows]
