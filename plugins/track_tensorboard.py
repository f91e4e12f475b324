"""TensorBoard tracker (``--track tensorboard``; extra ``imgcls-harness[tensorboard]``).

One event-file folder per run, ``$HARNESS_TENSORBOARD_DIR/<experiment>/<run name>-<id>`` (default
``./runs``, TensorBoard's own convention), written with ``torch.utils.tensorboard``: every epoch's
metrics as scalars (step = epoch), the final scores under ``final/``, the registry reference and,
for a selection, the leaderboard as text. The recipe and the final scores are also the HParams
dashboard's session (hyperparameters against metrics; a selection's candidates end with latency,
size and parity under ``final/select/``). ``tensorboard --logdir runs`` shows them.
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
_PARAMS: dict[str, dict[str, Any]] = {}  # run id -> its hyperparameters, written with its end


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
    _WRITERS[run.id] = writer
    _PARAMS[run.id] = {k: v if isinstance(v, (int, float, str)) else str(v) for k, v in run.params.items()}


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
    params = _PARAMS.pop(run.id, {})
    if writer is None:
        return
    final = {f"final/{key}": value for key, value in metrics.items()}
    for tag, value in final.items():
        writer.add_scalar(tag, value, 0)
    _write_hparams(writer, params, final, status)
    writer.add_text("harness/result", f"{status}; version {version}", 0)
    writer.close()


def _write_hparams(writer: Any, params: dict[str, Any], metrics: dict[str, float], status: str) -> None:
    """The HParams plugin's three summaries (experiment, session start, session end) in the run's
    own folder; the metrics they name are the ``final/`` scalars written next to them."""
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    from torch.utils.tensorboard.summary import hparams

    experiment, start, end = hparams(params, metrics)
    if status != "FINISHED":
        data = HParamsPluginData.FromString(end.value[0].metadata.plugin_data.content)
        data.session_end_info.status = Status.Value("STATUS_FAILURE")
        end.value[0].metadata.plugin_data.content = data.SerializeToString()
    files = writer._get_file_writer()
    for summary in (experiment, start, end):
        files.add_summary(summary)
