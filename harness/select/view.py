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

LEGEND = ("flags: * chosen, = tied with the best on validation (95% interval of the difference includes 0), "
          "P on the Pareto front (validation quality vs ORT batch-1 latency), x excluded, ! failed or skipped, "
          "~ latency measured on a busy machine or too noisy.\n"
          "vs best: this row minus the best on validation, in points (x100), with a paired-bootstrap 95% interval "
          "over the validation images (and seeds). The choice uses validation only; test is reported.")


def _flags(row: LeaderboardRow) -> str:
    marks = (("*", row.chosen), ("=", bool(row.tied) and row.vs_best is not None and not row.chosen),
             ("P", bool(row.pareto)),
             ("x", bool(row.excluded)),
             ("!", row.status in ("failed", "skipped")), ("~", bool(row.timing)))
    return "".join(mark for mark, on in marks if on)


def _note(row: LeaderboardRow, mixed: bool = False) -> str:
    parts = [f"trained at the {row.budget} budget" if mixed and row.budget else None,
             "not compared with the best: no usable per-image predictions on the same images (made before they "
             "were kept, other images, or damaged: harness registry check)" if row.uncompared else None,
             f"successive halving: reached rung {row.rung}" if row.rung else None, row.robustness_note,
             f"excluded: {row.excluded}" if row.excluded else None,
             f"failed in {row.stage}" if row.stage else None, row.reason,
             f"latency unreliable: {row.timing}" if row.timing else None,
             f"place {row.place}" if row.place else None]
    return "; ".join(p for p in parts if p)


def _quality(value: float | None, ci95: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" + (f" ±{ci95:.4f}" if ci95 else "")


def _vs_best(row: LeaderboardRow) -> str:
    if row.vs_best is not None:
        return row.vs_best.text()
    return "best" if row.tied else ""


SECONDARY_SHOWN = 0
"""How many quality metrics besides the primary fit the compact table in 120 columns (macro F1 first);
the rest are named under the table, and every other format shows them all."""


def secondary_metrics(rows: Sequence[LeaderboardRow], primary: str) -> tuple[list[str], list[str]]:
    """(shown, folded): the quality metrics other than ``primary`` that some row has, in the task's order."""
    names = list(dict.fromkeys(k for r in rows for k in r.metrics if k != primary))
    names.sort(key=lambda n: n != "macro_f1")
    return names[:SECONDARY_SHOWN], names[SECONDARY_SHOWN:]


def robustness_table(rows: Sequence[LeaderboardRow]) -> list[str]:
    """A second small table: corruption accuracy and relative drop, test ECE before and after
    temperature scaling, and the temperature, for the rows that have any (no room in the first)."""
    shown = [r for r in rows if r.corruption_acc is not None or r.ece_scaled is not None]
    if not shown:
        return []

    def cell(value: float | None, spec: str) -> str:
        return "" if value is None else format(value, spec)

    table = [{"candidate": r.candidate, "corrupted": cell(r.corruption_acc, ".4f"),
              "drop": cell(r.robust_drop, ".1%"), "ECE": cell(r.metrics.get("ece"), ".4f"),
              "ECE (T)": cell(r.ece_scaled, ".4f"), "T": cell(r.temperature, ".3g")} for r in shown]
    return ["", render(table, "simple"), "", ROBUSTNESS_LEGEND]


ROBUSTNESS_LEGEND = (
    "corrupted: mean accuracy over 8 corruptions x 5 severities (after ImageNet-C) of a seeded subset of the test "
    "images, run on the ONNX file; drop: its loss relative to clean accuracy on those images. ECE: test expected "
    "calibration error (15 bins) of the raw logits; ECE (T): after dividing them by T, fitted on validation and "
    "written in the ONNX metadata ('temperature').")


def int8_table(rows: Sequence[LeaderboardRow]) -> list[str]:
    """``select --int8``: per row whether its INT8 file is offered, with the figures (no room in the first table)."""
    shown = [r for r in rows if r.int8 is not None]
    if not shown:
        return []
    table = [{"candidate": r.candidate, "int8": r.int8.summary() if r.int8 else "",
              "quantised": r.int8.quantised_text() if r.int8 else ""} for r in shown]
    return ["", render(table, "simple"), "", INT8_LEGEND]


INT8_LEGEND = (
    "int8: offered only when faster than FP32 ONNX Runtime at batch 1 and 32 in every interleaved round (>= 1.1x) and "
    "losing at most the allowed points on validation; speed-up FP32 ms / INT8 ms, accuracy change on validation, "
    "INT8/FP32 file size. quantised: nodes per op type that run in int8 (static QDQ, per-channel weights).")


def compact(rows: Sequence[LeaderboardRow], primary: str) -> str:
    """The default table: candidate, the primary metric on validation and test (± 95% CI over seeds),
    the paired difference with the best on validation, ORT latency, params, size, flags (a failed
    ONNX parity check excludes the row: flag ``x`` and a note); then the numbered notes, the metrics
    with no room, the legend."""
    table: list[dict[str, Any]] = []
    notes: list[str] = []
    shown, folded = secondary_metrics(rows, primary)
    mixed = len({r.budget for r in rows if r.budget}) > 1  # a board after --then: say which rows are which
    for r in rows:
        text = _note(r, mixed)
        if text:
            notes.append(f"[{len(notes) + 1}] {r.candidate}: {text}")
        line: dict[str, Any] = {"candidate": r.candidate, "val": _quality(r.val, r.val_ci95),
                                "test": _quality(r.primary_value, r.ci95), "vs best (val)": _vs_best(r)}
        for name in shown:
            value = r.metrics.get(name)
            line[name] = "" if value is None else f"{value:.4f}"
        line.update({"ORT b1 ms": r.ort_b1_ms, "params M": r.params_m,
                     "ONNX MB": r.size_mb, "flags": _flags(r),
                     "note": f"[{len(notes)}]" if text else ""})
        table.append(line)
    if not table:
        return render([], "simple", ["candidate", primary])
    more = [f"more metrics: {', '.join(folded)} (shown by --wide, --columns and every --format)"] if folded else []
    head = (f"val, test: {primary} on the validation images (the choice) and the test images (the report); "
            "± is a 95% interval over seeds")
    return "\n".join([render(table, "simple"), "", *notes, *more, *prescreen_line(rows), head, LEGEND,
                      *robustness_table(rows),
                      *int8_table(rows)])


def prescreen_line(rows: Sequence[LeaderboardRow]) -> list[str]:
    """Which prescreen scored the rows (the compact table has no room for the scores themselves)."""
    methods = sorted({r.prescreen_method or "unnamed" for r in rows if r.prescreen is not None})
    if not methods:
        return []
    return [f"prescreen: {' / '.join(methods)} score of each row before fine-tuning in columns prescreen and "
            "prescreen_method (--wide, --columns and every --format)"]


def pick(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Only ``columns`` of each row (``--columns``), in that order."""
    return [{c: r.get(c) for c in columns} for r in rows]
