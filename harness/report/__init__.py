"""``harness report``: a selection decision as one self-contained HTML file to look at and share.

``collect`` reads what ``select`` stored (rows, per-class scores, training history, parity, the
environment) and checks the task's data; ``html`` renders it with charts from ``svg``. The Python
API's entry point is :func:`harness.write_report` (:func:`harness.api.report`; it takes a task name
and opens a context), not this package's :func:`write_report` (which takes a ``Context``).
"""

from __future__ import annotations

from pathlib import Path

from harness.context import Context
from harness.report.collect import CandidateDetail, ReportData, collect, reproduce_command
from harness.report.html import render
from registry.files import atomic_write_bytes, check_out_path


def write_report(ctx: Context, task: str, path: str | Path, *, data_check: bool = True) -> ReportData:
    """Gather the report of ``task`` and write it to ``path`` (atomically: never half a file); a path
    that cannot be written is refused before any work (:func:`check_out_path`)."""
    out = check_out_path(path)
    data = collect(ctx, task, data_check=data_check)
    atomic_write_bytes(out, render(data).encode())
    return data


__all__ = ["CandidateDetail", "ReportData", "check_out_path", "collect", "render", "reproduce_command",
           "write_report"]
