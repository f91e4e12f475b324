"""Render rows as a table (tabulate), JSON or CSV on stdout. Logs never go here."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "json", "csv")


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else value


def render_rows(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """A list of flat-ish dicts as ``table``, ``json`` (a list) or ``csv`` (with a header)."""
    if fmt == "json":
        return json.dumps(list(rows), indent=2, default=str)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
        return buf.getvalue().rstrip("\n")
    from tabulate import tabulate

    if not rows:
        return "(nothing matched)"
    return tabulate([[_cell(r.get(c)) for c in columns] for r in rows], headers=columns,
                    tablefmt="simple", disable_numparse=True)


def render_record(record: dict[str, Any]) -> str:
    """One entry as a two-column key/value table."""
    from tabulate import tabulate

    lines = []
    for key, value in record.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                label = item.get("tag") or item.get("name") or ""
                lines.append((f"{key}[{label}]", json.dumps(item, default=str)))
        else:
            lines.append((key, _cell(value)))
    return tabulate(lines, tablefmt="plain", disable_numparse=True)
