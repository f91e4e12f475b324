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
    parts = [f"excluded: {row.excluded}" if row.excluded else None,
             f"failed in {row.stage}" if row.stage else None, row.reason,
             f"latency unreliable: {row.timing}" if row.timing else None,
             f"place {row.place}" if row.place else None]
    return "; ".join(p for p in parts if p)


def _quality(row: LeaderboardRow) -> str:
    value = row.primary_value
    if value is None:
        return ""
    return f"{value:.4f}" + (f" ±{row.ci95:.4f}" if row.ci95 else "")


def compact(rows: Sequence[LeaderboardRow], primary: str) -> str:
    """The default table: candidate, quality (± 95% CI), macro F1, ORT latency and throughput, size,
    parity, flags; then the numbered notes and the legend."""
    table: list[dict[str, Any]] = []
    notes: list[str] = []
    show_f1 = any("macro_f1" in r.metrics for r in rows) and primary != "macro_f1"
    for r in rows:
        text = _note(r)
        if text:
            notes.append(f"[{len(notes) + 1}] {r.candidate}: {text}")
        line: dict[str, Any] = {"candidate": r.candidate, primary: _quality(r)}
        if show_f1:
            f1 = r.metrics.get("macro_f1")
            line["macro_f1"] = "" if f1 is None else f"{f1:.4f}"
        line.update({"ORT b1 ms": r.ort_b1_ms, "img/s b32": r.ort_b32_img_s, "params M": r.params_m,
                     "ONNX MB": r.size_mb, "parity": r.parity, "flags": _flags(r),
                     "note": f"[{len(notes)}]" if text else ""})
        table.append(line)
    if not table:
        return render([], "simple", ["candidate", primary])
    return "\n".join([render(table, "simple"), "", *notes, LEGEND])


def pick(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Only ``columns`` of each row (``--columns``), in that order."""
    return [{c: r.get(c) for c in columns} for r in rows]
