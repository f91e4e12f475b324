"""The one function that prints results: rows as a text table, JSON or CSV on stdout.

Every command renders through :func:`render`, so ``--format`` means the same everywhere; JSON is
strict (NaN and infinities become ``null``), CSV has a header row even when there are no rows.
Logs and progress never come here (they go to stderr through :mod:`harness.progress`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "json", "csv")
"""What every command's ``--format`` takes (select and leaderboard add :data:`TABLE_FORMATS`)."""
TABLE_FORMATS = ("github", "pipe", "latex", "html")
"""Extra tabulate styles that leaderboards offer (``table`` is the plain one)."""


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    return "" if value is None else value


def _table_cell(value: Any) -> Any:
    """A cell for people: floats to at most 4 decimals (a float32 metric prints 0.10000000149011612);
    CSV and JSON keep the exact value."""
    if isinstance(value, float) and math.isfinite(value):
        return repr(round(value, 4)) if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"  # 1e-05 stays
    return _cell(value)


def strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (what strict JSON parsers accept)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def to_json(data: Any) -> str:
    """Strict, indented JSON."""
    return json.dumps(strict(data), indent=2, default=str, allow_nan=False)


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every key some row has, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return columns


def render(rows: Sequence[dict[str, Any]], fmt: str, columns: Sequence[str] | None = None) -> str:
    """``rows`` as ``table`` (or a tabulate style from :data:`TABLE_FORMATS`), ``json`` or ``csv``.

    ``columns`` picks and orders the columns of tables and CSV (JSON always keeps every key).
    """
    if fmt == "json":
        return to_json(list(rows))
    columns = list(columns) if columns is not None else columns_of(rows)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        return buf.getvalue().rstrip("\n")
    from tabulate import tabulate

    if not rows and fmt == "table":
        return "(nothing matched)"
    return tabulate([[_table_cell(r.get(c)) for c in columns] for r in rows], headers=columns,
                    tablefmt="simple" if fmt == "table" else fmt, disable_numparse=True)


def render_report(report: dict[str, Any], rows: Sequence[dict[str, Any]], fmt: str) -> str | None:
    """A report with rows in a machine format (JSON: the whole report; CSV: its rows), or None for a
    table, which the command lays out for people itself."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return render(rows, "csv")
    return None


def render_record(record: dict[str, Any]) -> str:
    """One entry as a two-column key/value table; nested parts one line per value
    (``protocol.input_size``, ``weights[tv_in1k].accuracy.imagenet_top1``), never a Python repr."""
    from tabulate import tabulate

    lines = [line for key, value in record.items() for line in _record_lines(key, value, top=True)]
    return tabulate(lines, tablefmt="plain", disable_numparse=True)


def _record_lines(key: str, value: Any, top: bool = False) -> list[tuple[str, Any]]:
    """The ``(key, cell)`` lines of one value: records in a list under ``key[tag]``, mappings under
    ``key.sub``; below the top level, empty values are left out (a weight tag's unset fields)."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, dict) for item in value):
        out: list[tuple[str, Any]] = []
        for i, item in enumerate(value):
            label = item.get("tag") or item.get("name") or str(i)
            out.extend(line for sub, v in item.items() for line in _record_lines(f"{key}[{label}].{sub}", v))
        return out
    if isinstance(value, dict) and value:
        return [line for sub, v in value.items() for line in _record_lines(f"{key}.{sub}", v)]
    if not top and (value is None or value == "" or value == {} or value == [] or value == ()):
        return []
    return [(key, _table_cell(value))]


def counted(n: int, one: str, many: str | None = None) -> str:
    """``1 epoch``, ``3 epochs``: a count with its noun in the right number (``many`` for irregular plurals)."""
    return f"{n} {one if n == 1 else many or one + 's'}"
