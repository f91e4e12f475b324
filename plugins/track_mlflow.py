"""MLflow tracker (``--track mlflow``; extra ``imgcls-harness[mlflow]``).

Each fine-tune and pretraining is an MLflow run: the recipe as params, per-epoch metrics (step =
epoch), the final scores, the weights and the ONNX export as artifacts, the registry reference as
the tag ``harness.version``. A selection is a parent run with one child run per candidate trained
in this process and the leaderboard as artifacts (``leaderboard/leaderboard.csv`` and
``leaderboard.json``). The experiment is ``harness/<task>`` unless ``MLFLOW_EXPERIMENT_NAME`` says
otherwise; the store is MLflow's own choice, so ``MLFLOW_TRACKING_URI`` is honoured. Talks to MLflow
through ``MlflowClient`` with explicit run ids (no global active run to leak between runs).

A candidate of a selection is the run ``<task>/<candidate>``; it ends after its ONNX export and
benchmark, with the figures select weighs as metrics (``select/ort_b1_ms``, ``select/size_mb``,
``select/parity_passed``...), so MLflow's compare view shows the trade-off.

An HTTP tracking server is probed once (``/health``, :data:`PROBE_TIMEOUT_S`) before the first run:
one that cannot be reached switches this tracker off at once instead of stalling training in
MLflow's retries (seven by default, minutes). Unless set, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and
``MLFLOW_HTTP_REQUEST_TIMEOUT`` are lowered to :data:`HTTP_DEFAULTS` for a server that goes away later.
"""

from __future__ import annotations

import os
import time
from typing import Any

import harness
from harness.track import provided

NAME = "mlflow"
_RUNS: dict[str, str] = {}  # harness run id -> MLflow run id
_PROBED: dict[str, str | None] = {}  # tracking URI -> why it cannot be reached (None: it answered)
FINAL_PREFIX = {"finetune": "test_", "pretrain": "", "select": "winner_"}
"""Final scores are ``test_accuracy`` (a fine-tune) or ``winner_accuracy`` (a selection); names that
already say where they come from (``select/size_mb``) are kept as they are."""
PROBE_TIMEOUT_S = 3.0
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def _client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def unreachable(uri: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the HTTP tracking server at ``uri`` cannot be reached, or None (it answered, whatever
    the status: a proxy's 404 still means MLflow's own requests will get there). Other stores
    (a folder, ``sqlite:``) are not probed."""
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return None
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))
    return None


def _check_server() -> None:
    """Fail fast (the caller switches this tracker off) when the tracking server is unreachable."""
    import mlflow

    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = mlflow.get_tracking_uri()
    if uri not in _PROBED:
        _PROBED[uri] = unreachable(uri)
    if _PROBED[uri] is not None:
        raise ConnectionError(f"MLflow tracking server {uri} is unreachable ({_PROBED[uri]}); start it or fix "
                              "MLFLOW_TRACKING_URI")


def _mine(run: Any) -> bool:
    return NAME in run.trackers


@harness.hookimpl
def track_names() -> list[str]:
    return provided(NAME, "mlflow")


@harness.hookimpl
def track_run_started(run: Any) -> None:
    if not _mine(run):
        return
    from mlflow.entities import Param

    _check_server()
    client = _client()
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"harness/{run.experiment}"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    tags = {"harness.kind": run.kind, "harness.run_id": run.id, **run.tags}
    if run.parent in _RUNS:
        tags["mlflow.parentRunId"] = _RUNS[run.parent]
    created = client.create_run(experiment_id, run_name=run.name, tags=tags)
    _RUNS[run.id] = created.info.run_id
    params = [Param(k, str(v)[:6000]) for k, v in run.params.items()]
    for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(created.info.run_id, params=params[start:start + 100])


@harness.hookimpl
def track_epoch_ended(run: Any, epoch: int, metrics: dict[str, float]) -> None:
    if not _mine(run) or run.id not in _RUNS:
        return
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    _client().log_batch(_RUNS[run.id], metrics=[Metric(k, v, now, epoch) for k, v in metrics.items()])


@harness.hookimpl
def track_artifact(run: Any, role: str, path: str) -> None:
    if _mine(run) and run.id in _RUNS:
        _client().log_artifact(_RUNS[run.id], path, artifact_path=role)


@harness.hookimpl
def track_select_finished(run: Any, rows: list[dict[str, Any]], winner: str | None) -> None:
    if _mine(run) and run.id in _RUNS:
        client = _client()
        client.log_dict(_RUNS[run.id], rows, "leaderboard.json")
        if winner:
            client.set_tag(_RUNS[run.id], "harness.winner", winner)


@harness.hookimpl
def track_run_finished(run: Any, status: str, metrics: dict[str, float], version: str | None) -> None:
    if not _mine(run) or run.id not in _RUNS:
        return
    from mlflow.entities import Metric

    client, run_id = _client(), _RUNS.pop(run.id)
    prefix = FINAL_PREFIX.get(run.kind, "")
    now = int(time.time() * 1000)
    if metrics:
        client.log_batch(run_id, metrics=[Metric(k if "/" in k else f"{prefix}{k}", v, now, 0)
                                          for k, v in metrics.items()])
    if version:
        client.set_tag(run_id, "harness.version", version)
    client.set_terminated(run_id, status)
