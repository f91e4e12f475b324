"""TensorBoard tracker (``--track tensorboard``; extra ``imgcls-harness[tensorboard]``).

One event-file folder per run, ``$HARNESS_TENSORBOARD_DIR/<experiment>/<run name>-<id>`` (default
``./runs``, TensorBoard's own convention), written with ``torch.utils.tensorboard``: every epoch's
metrics as scalars (step = epoch), the final scores under ``final/``, the registry reference and,
for a selection, the leaderboard as text. ``tensorboard --logdir runs`` shows them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import harness
from harness.track import provided

NAME = "tensorboard"
_WRITERS: dict[str, Any] = {}


def _mine(run: Any) -> bool:
    return NAME in run.trackers


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


@harness.hookimpl
def track_names() -> list[str]:
    return provided(NAME, "tensorboard")


@harness.hookimpl
def track_run_started(run: Any) -> None:
    if not _mine(run):
        return
    from torch.utils.tensorboard import SummaryWriter

    base = Path(os.environ.get("HARNESS_TENSORBOARD_DIR", "runs"))
    writer = SummaryWriter(log_dir=str(base / _safe(run.experiment) / f"{_safe(run.name)}-{run.id[:8]}"))
    writer.add_text("harness/params", "\n".join(f"- {k}: {v}" for k, v in sorted(run.params.items())), 0)
    _WRITERS[run.id] = writer


@harness.hookimpl
def track_epoch_ended(run: Any, epoch: int, metrics: dict[str, float]) -> None:
    writer = _WRITERS.get(run.id) if _mine(run) else None
    if writer is not None:
        for key, value in metrics.items():
            writer.add_scalar(key, value, epoch)
        writer.flush()


@harness.hookimpl
def track_select_finished(run: Any, rows: list[dict[str, Any]], winner: str | None) -> None:
    writer = _WRITERS.get(run.id) if _mine(run) else None
    if writer is not None and rows:
        columns = [c for c in rows[0] if not isinstance(rows[0][c], (dict, list))][:8]
        table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        table += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
        writer.add_text("leaderboard", "\n".join(table), 0)


@harness.hookimpl
def track_run_finished(run: Any, status: str, metrics: dict[str, float], version: str | None) -> None:
    writer = _WRITERS.pop(run.id, None) if _mine(run) else None
    if writer is None:
        return
    for key, value in metrics.items():
        writer.add_scalar(f"final/{key}", value, 0)
    writer.add_text("harness/result", f"{status}; version {version}", 0)
    writer.close()
