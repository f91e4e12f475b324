"""One candidate x seed fine-tuned away from the driver (a Ray task, another process or machine).

The worker never writes the driver's store: it fine-tunes in a private, temporary store and
returns the weights (bytes) and the version's record to the driver, which registers it (one writer;
the registry stays consistent whatever happens to workers). What a worker needs travels in a
:class:`TrialSpec` of plain data: the context (plugins to rebuild), how to rebuild the task (views
of a registered task are replayed; ``--data`` tasks travel in ``HARNESS_DATA_TASKS``), the model to
start from (a backbone or tag name, or weights sent as bytes), the recipe and the seed. Data reaches
the worker through the decoded-data cache (``HARNESS_CACHE``), decoded once per machine.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.context import Context
    from harness.models.sources import ModelSource
    from registry.store import ModelVersion

PASSED_ENV = ("HARNESS_DATA", "HARNESS_CACHE", "HARNESS_DATA_TASKS", "TORCH_HOME", "HF_HOME", "PYTHONPATH",
              "HARNESS_LOAD_PLUGINS")
"""Environment variables a worker gets from the driver (data roots, caches, --data tasks, plugins)."""


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to fine-tune one candidate with one seed (plain data)."""

    context: str  # ContextSpec JSON (its home is ignored: the worker's store is private)
    base_task: str
    views: tuple[str, ...]
    ref: str  # the candidate as named in the selection
    model: str | None  # a backbone[.tag] to start from; None when the weights travel as bytes
    backbone: str
    recipe: dict[str, Any]


@dataclass
class TrialResult:
    """A fine-tuned model, for the driver to register."""

    weights: bytes
    record: dict[str, Any]
    host: str = ""
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)  # other roles' files (per-image predictions)


def make_spec(ctx: Context, task: str, ref: str, recipe: dict[str, Any], source: ModelSource | None = None
              ) -> tuple[TrialSpec, bytes | None]:
    """The spec of fine-tuning ``ref`` on ``task``, and the start's weights when they must travel
    (``source``: ``ref`` resolved already)."""
    from harness.data.views import view_chain
    from harness.models.sources import resolve_model

    base, views = view_chain(ctx, task)
    source = source or resolve_model(ctx, ref)
    weights = source.weights_file.read_bytes() if source.weights_file is not None else None
    spec = ctx.spec()
    return TrialSpec(spec.to_json(), base, tuple(views), ref, None if weights is not None else ref,
                     source.backbone.name, recipe), weights


def run_trial(spec: TrialSpec, weights: bytes | None) -> TrialResult:
    """Fine-tune in a private store; return the weights and the version's record."""
    from harness.context import Context, ContextSpec
    from harness.data.datatask import resolve
    from harness.data.views import replay_views
    from harness.train.finetune import finetune
    from harness.train.recipe import Recipe

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="harness-trial-") as tmp:
        parsed = ContextSpec.from_json(spec.context)
        context = ContextSpec(parsed.plugins, tmp, parsed.data, parsed.device, True)
        with Context.from_spec(context) as ctx:
            task = replay_views(ctx, str(resolve(ctx, spec.base_task, None)), list(spec.views))
            model = spec.model
            if model is None:
                assert weights is not None
                path = Path(tmp) / "start.safetensors"
                path.write_bytes(weights)
                model = str(path)
            result = finetune(ctx, model, task, Recipe(**spec.recipe), backbone=spec.backbone)
            record = _record(result.version)
            data = result.version.artifacts["weights"].path.read_bytes()
            extra = {role: a.path.read_bytes() for role, a in result.version.artifacts.items() if role != "weights"}
    return TrialResult(data, record, socket.gethostname(), time.perf_counter() - started, {"pid": os.getpid()},
                       extra)


@dataclass(frozen=True)
class PretrainSpec:
    """Everything a worker needs to pretrain one zoo entry (plain data)."""

    context: str
    base: str  # a dataset or task
    views: tuple[str, ...]
    backbone: str
    method: str
    recipe: dict[str, Any]


def run_pretrain_trial(spec: PretrainSpec) -> TrialResult:
    """Pretrain in a private store; return the weights and the version's record."""
    from harness.context import Context, ContextSpec
    from harness.data.views import replay_views
    from harness.train.pretrain import pretrain
    from harness.train.recipe import Recipe

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="harness-trial-") as tmp:
        parsed = ContextSpec.from_json(spec.context)
        with Context.from_spec(ContextSpec(parsed.plugins, tmp, parsed.data, parsed.device, True)) as ctx:
            dataset = replay_views(ctx, spec.base, list(spec.views))
            result = pretrain(ctx, spec.backbone, dataset, spec.method, Recipe(**spec.recipe))
            record = {**_record(result.version), "kind": "pretrain"}
            data = result.version.artifacts["weights"].path.read_bytes()
    return TrialResult(data, record, socket.gethostname(), time.perf_counter() - started, {"pid": os.getpid()})


def _record(version: ModelVersion) -> dict[str, Any]:
    return {"backbone": version.backbone, "task": version.task, "dataset": version.dataset, "kind": version.kind,
            "num_classes": version.num_classes, "class_names": list(version.class_names or ()),
            "recipe": version.recipe, "metrics": version.metrics, "environment": version.environment,
            "seed": version.seed, "device": version.device}


def register_result(ctx: Context, ref: str, result: TrialResult, name: str, tags: dict[str, str],
                    source: ModelSource | None = None) -> ModelVersion:
    """Register a worker's model (kind ``finetune`` or ``pretrain``, from its record) in the driver's
    store, with the same lineage a local run records (``source``: ``ref`` resolved already)."""
    from harness.models.sources import pretrained_version, resolve_model
    from harness.train.finetune import warn_if_parent_removed
    from registry import keys

    source = source or resolve_model(ctx, ref)
    parent = source.version or pretrained_version(ctx, source)
    r = result.record
    recipe = {**r["recipe"], "source": ref, "trained_on": result.host}
    kind = r.get("kind", "finetune")
    with tempfile.TemporaryDirectory(prefix="harness-trial-") as tmp:
        path = Path(tmp) / "weights.safetensors"
        path.write_bytes(result.weights)
        files = {keys.ROLE_WEIGHTS: path}
        for role, blob in result.artifacts.items():  # the roles travel as bytes; the names are ours
            files[role] = Path(tmp) / f"artifact-{len(files)}"
            files[role].write_bytes(blob)
        version = ctx.store.register(
            name, backbone=r["backbone"], kind=kind, files=files,
            parent=parent, task=r["task"], dataset=r["dataset"],
            num_classes=r["num_classes"], class_names=tuple(r["class_names"]) or None, recipe=recipe,
            metrics=r["metrics"], environment=r["environment"], seed=r["seed"], device=r["device"],
            tags=tags, artifact_meta={keys.ROLE_WEIGHTS: {"format": "safetensors"}})
    ctx.tracking.replay(version, result.host)
    warn_if_parent_removed(ctx, version)
    return version
