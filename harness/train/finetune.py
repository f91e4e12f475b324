"""Fine-tune a backbone (or a registered model) on a task and register the result.

``finetune()`` is what ``harness finetune`` calls: resolve the model, load the task's data once,
carve a validation split from train (never test), train with the recipe, keep the best epoch by
the task's primary metric, evaluate on test, and register a new model version with its lineage.
Each step is one function below; :class:`Run` carries what they share.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from harness.data.batches import TensorBatches
from harness.data.preprocess import Preprocess, resolve_preprocess
from harness.data.splits import TaskData, load_task_data
from harness.data.views import ViewLoader
from harness.environment import (
    builder_versions,
    check_batch_fits,
    device_description,
    library_versions,
    select_device,
)
from harness.evaluate.metrics import compute, preflight
from harness.evaluate.predict import predict, score_logits
from harness.evaluate.report import Evaluation
from harness.fingerprint import fingerprint
from harness.models.availability import require_weights
from harness.models.sources import ModelSource, pretrained_version, resolve_model
from harness.models.weights import save_weights
from harness.output import counted
from harness.train.distributed import Dist, current, finish, share, weights_identical, wrap
from harness.train.engine import FitConfig, FitState, fit, load_checkpoint
from harness.train.freeze import apply_strategy, param_groups
from harness.train.recipe import Recipe
from harness.train.schedule import WarmupSchedule
from registry import Metric, PluginError, Task, UsageError, keys
from registry.store import ModelVersion

if TYPE_CHECKING:
    from harness.context import Context
    from harness.track import TrackedRun


@dataclass
class FinetuneResult:
    version: ModelVersion
    test: Evaluation
    history: list[dict[str, Any]]


@dataclass(frozen=True)
class Scored:
    """The trained model's scores and logits on validation (None without one) and on test."""

    val: Evaluation | None
    test: Evaluation
    val_logits: torch.Tensor | None
    test_logits: torch.Tensor


@dataclass
class Run:
    """What the steps of one fine-tuning run share."""

    model_ref: str
    task: Task
    primary: Metric
    recipe: Recipe
    source: ModelSource
    pre: Preprocess
    data: TaskData
    device: torch.device
    run_id: str
    run_dir: Path
    dist: Dist | None = None  # under torchrun: this rank's place

    @property
    def amp(self) -> torch.dtype | None:
        return torch.bfloat16 if self.device.type == "cuda" else None


def prepare(ctx: Context, model_ref: str, task: str | Task, recipe: Recipe, backbone: str | None = None,
            source: ModelSource | None = None) -> Run:
    """Resolve the model and load the data; every user error surfaces here, before any training.
    A caller that has the task and the model resolved already (a selection) hands them in."""
    ctx.store.require_writable()
    if not isinstance(task, Task):
        task = ctx.catalogue.task(task)
    primary = ctx.catalogue.metrics.get(task.primary_metric)
    device = select_device(ctx.device)
    dist = current(ctx.device)
    if dist is not None:
        device = dist.device()
        if recipe.batch_size % dist.world:
            raise UsageError(f"{{param}} {recipe.batch_size} is the global batch and must divide evenly over "
                             f"{dist.world} processes", param="batch_size")
    source = source or resolve_model(ctx, model_ref, backbone=backbone)
    require_weights(source)  # uncached pretrained weights that cannot be downloaded: said before the data loads
    augmentation = recipe.augmentation if recipe.augmentation is not None else task.protocol.augmentation
    pre = resolve_preprocess(source, recipe.input_size or task.protocol.input_size, augmentation=augmentation,
                             crop_padding=task.protocol.crop_padding)
    check_batch_fits(recipe.batch_size, pre.channels, pre.input_size, device)
    data = load_task_data(ctx, task, image_size=pre.input_size, train_limit=recipe.train_limit,
                          test_limit=recipe.test_limit, val_fraction=recipe.val_fraction, seed=recipe.seed,
                          val_limit=recipe.val_limit)
    preflight(ctx.catalogue, task, data.num_classes)
    if recipe.backbone_lr_mult is None:
        recipe = dataclasses.replace(recipe, backbone_lr_mult=0.1 if source.pretrained else 1.0)
    if len(data.train) < recipe.batch_size:
        raise UsageError(f"only {len(data.train)} training images for batch size {recipe.batch_size}; "
                         "lower {param}", param="batch_size")
    where = f"{device.type} x{dist.world}" if dist else str(device)  # the same on every rank
    run_id = fingerprint(model_ref, source.weights_file and str(source.weights_file), task.name,
                         recipe.as_dict(), pre.as_dict(), where)
    return Run(model_ref, task, primary, recipe, source, pre, data, device, run_id,
               ctx.store.home / "runs" / run_id, dist)


def _optimiser(model: torch.nn.Module, run: Run, steps_per_epoch: int) -> tuple[Any, Any]:
    recipe = run.recipe
    assert recipe.backbone_lr_mult is not None
    groups = param_groups(model, run.source.backbone.head, recipe.lr, recipe.backbone_lr_mult, recipe.weight_decay)
    if recipe.optimizer == "sgd":
        optimizer: Any = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
    else:
        optimizer = torch.optim.AdamW(groups, lr=recipe.lr)
    schedule = WarmupSchedule(recipe.epochs * steps_per_epoch, int(recipe.warmup_epochs * steps_per_epoch),
                              recipe.schedule)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def train(ctx: Context, run: Run, *, resume: bool = False, compile: bool = False,
          tracked: TrackedRun | None = None) -> tuple[torch.nn.Module, FitState]:
    """Build the model, train it (resuming from the run's checkpoint when asked); best weights loaded."""
    torch.manual_seed(run.recipe.seed)
    model = run.source.build(run.data.num_classes).to(run.device)
    if run.pre.channels_last:
        model = model.to(memory_format=torch.channels_last)
    frozen = apply_strategy(model, run.source.backbone.head, run.recipe.strategy, run.recipe.partial_blocks)
    generator = torch.Generator().manual_seed(run.recipe.seed)
    dist = run.dist
    batches = TensorBatches(run.data.train.images, run.data.train.labels, run.recipe.batch_size, run.pre,
                            run.device, train=True, generator=generator,
                            shard=(dist.rank, dist.world) if dist else None)
    optimizer, scheduler = _optimiser(model, run, len(batches))
    # torch.compile types its result as a callable; given a module it returns one (OptimizedModule)
    forward = cast(torch.nn.Module, torch.compile(model)) if compile else model
    if dist is not None:
        forward = wrap(forward, dist)
    val = run.data.val
    warned: list[str] = []
    last: list[torch.Tensor] = []  # the latest epoch's validation logits

    def validate(m: torch.nn.Module) -> float:
        assert val is not None
        logits = predict(forward, val.images, val.labels, run.pre, run.device, amp_dtype=run.amp)
        last[:] = [logits]
        try:
            return compute(run.primary, logits, val.labels, run.data.num_classes)
        except PluginError as exc:  # the epoch counts as no improvement; training goes on
            if not warned:
                warned.append(str(exc))
                ctx.progress.warn(f"validation: {exc}; epochs are not compared, the last one is kept")
            return math.nan

    checkpoint = run.run_dir / "checkpoint.pt"
    state = None
    if resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, model, optimizer, scheduler, generator, run.run_id)
        ctx.progress.info(f"resuming run {run.run_id} after epoch {state.epoch}")
    elif resume:
        ctx.progress.info(f"no checkpoint for run {run.run_id}; starting from the beginning")
    config = FitConfig(epochs=run.recipe.epochs, higher_is_better=run.primary.higher_is_better,
                       patience=run.recipe.patience, validate_each_epoch=run.recipe.keep_epoch == "best",
                       label_smoothing=run.recipe.label_smoothing, amp_dtype=run.amp,
                       progress=ctx.progress, checkpoint=checkpoint if dist is None or dist.main else None,
                       fingerprint=run.run_id,
                       on_epoch=(lambda record: ctx.tracking.epoch(tracked, record)) if tracked else None)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    state = fit(forward, batches, optimizer, scheduler, config, validate if val is not None else None, frozen, state)
    model.load_state_dict(state.best_weights())
    if last and state.best_epoch == state.epoch and not compile and dist is None:
        state.best_val_logits = last[0]  # the kept weights are the last epoch's: _score need not predict again
    return model, state


def _eval_sets(run: Run) -> dict[str, Any]:
    """The image sets of the run's validation and test scores (see :class:`EvalSet`)."""
    from harness.predictions.stored import eval_set

    data = run.data
    out = {"test": eval_set("test", data.dataset, "test", data.test_ids, data.test_size)}
    if data.val is not None and data.val_ids is not None:
        out["val"] = eval_set("val", data.dataset, "train", data.val_ids, data.train_size)
    return out


def _save_predictions(run: Run, scored: Scored) -> Path:
    from harness.predictions.stored import save_predictions

    splits = {"test": (scored.test_logits.numpy(), run.data.test.labels.numpy(), run.data.test_ids.numpy())}
    if scored.val_logits is not None and run.data.val is not None:
        splits["val"] = (scored.val_logits.numpy(), run.data.val.labels.numpy(), run.data.val_ids.numpy())
    return save_predictions(run.run_dir / "predictions.npz", splits)


def register(ctx: Context, run: Run, model: torch.nn.Module, state: FitState, scored: Scored, *,
             name: str | None = None, alias: str | None = None,
             distributed: dict[str, Any] | None = None) -> ModelVersion:
    """Write the weights and the per-image predictions, and record the version: recipe, scores on
    validation and test with the image sets they cover, history, lineage, environment."""
    test = scored.test
    parent = run.source.version or pretrained_version(ctx, run.source)
    recorded = {**run.recipe.as_dict(), "preprocess": run.pre.as_dict(), "source": run.model_ref,
                "best_epoch": state.best_epoch}
    if distributed:
        recorded["distributed"] = distributed
    loader = ctx.catalogue.datasets.get(run.task.dataset).loader
    if isinstance(loader, ViewLoader):  # a view of a dataset: which one, and what it keeps
        recorded["view"] = {"of": loader.base.name, "view": loader.view.text()}
    path = save_weights(model, run.run_dir / "weights.safetensors", {
        "backbone": run.source.backbone.name, "num_classes": run.data.num_classes,
        "class_names": list(run.data.class_names), "task": run.task.name, "preprocess": run.pre.as_dict()})
    failed = {keys.TEST_FAILED: dict(test.failed)} if test.failed else {}
    detail = {"confusion_matrix": [list(r) for r in test.confusion], "per_class": [c.as_dict() for c in test.per_class]}
    sets = _eval_sets(run)
    val_scores = scored.val.metrics if scored.val is not None else {run.primary.name: state.best_metric}
    metrics = {keys.TEST: test.metrics, **failed, keys.TEST_DETAIL: detail, keys.VAL: val_scores,
               keys.EVAL_SETS: {k: v.as_dict() for k, v in sets.items()},
               keys.TRAIN: {"loss": state.history[-1]["train_loss"],
                            "seconds": round(sum(h["seconds"] for h in state.history), 2),
                            "images_per_s": state.history[-1]["images_per_s"]},
               keys.HISTORY: state.history}
    version = ctx.store.register(
        name or run.task.name, backbone=run.source.backbone.name, kind="finetune",
        files={keys.ROLE_WEIGHTS: path, keys.ROLE_PREDICTIONS: _save_predictions(run, scored)},
        parent=parent, task=run.task.name, dataset=run.task.dataset,
        num_classes=run.data.num_classes, class_names=run.data.class_names, recipe=recorded, metrics=metrics,
        environment={**library_versions(), **builder_versions(run.source.backbone),
                     "device": device_description(run.device)}, seed=run.recipe.seed,
        device=run.device.type, alias=alias, artifact_meta={keys.ROLE_WEIGHTS: {"format": "safetensors"},
                                                           keys.ROLE_PREDICTIONS: {"format": "npz"}},
    )
    shutil.rmtree(run.run_dir, ignore_errors=True)
    warn_if_parent_removed(ctx, version)
    return version


def warn_if_parent_removed(ctx: Context, version: ModelVersion) -> None:
    """Say so when the version this one was made from was removed meanwhile (``registry remove``
    during the run): the new version is kept, without the lineage link."""
    lost = version.tags.get(keys.TAG_PARENT_REMOVED)
    if lost:
        ctx.progress.warn(f"{version.ref} was made from {lost}, which was removed while it trained; it is "
                          f"registered without that lineage link (its tag {keys.TAG_PARENT_REMOVED!r} names it)")


def finetune(ctx: Context, model_ref: str, task: str | Task, recipe: Recipe, *, name: str | None = None,
             resume: bool = False, compile: bool = False, alias: str | None = None, tta_flip: bool = False,
             backbone: str | None = None, source: ModelSource | None = None) -> FinetuneResult:
    """Fine-tune ``model_ref`` on ``task`` (a name, or the task looked up already); returns the
    registered version and its test scores.

    ``backbone`` names the architecture when ``model_ref`` is a plain state-dict file; ``source`` is
    ``model_ref`` resolved already (:func:`~harness.models.sources.resolve_model`), by a caller
    that resolved it once for several runs.
    """
    ctx.check_new_name(name, alias)
    run = prepare(ctx, model_ref, task, recipe, backbone, source)
    ctx.progress.info(
        f"{model_ref} on {run.task.name}: {len(run.data.train)} train / {len(run.data.val) if run.data.val else 0} "
        f"val / {len(run.data.test)} test images at {run.pre.input_size}px, strategy {run.recipe.strategy}, "
        f"{counted(run.recipe.epochs, 'epoch')}, {device_description(run.device)}")
    from harness.track import WEIGHTS_NAME

    with ctx.tracking.running(name or f"{run.task.name}/{model_ref}", "finetune", run.task.name,
                              {**recipe.as_dict(), "model": model_ref}, {"harness.model": model_ref},
                              enabled=run.dist is None or run.dist.main) as tracked:
        model, state = train(ctx, run, resume=resume, compile=compile, tracked=tracked)
        if run.dist is not None:
            return _finish_distributed(ctx, run, model, state, name=name, alias=alias, tta_flip=tta_flip,
                                       tracked=tracked)
        scored = _score(ctx, run, model, tta_flip, None if tta_flip else state.best_val_logits)
        test = scored.test
        version = register(ctx, run, model, state, scored, name=name, alias=alias)
        ctx.progress.info(f"registered {version.ref}")
        if tracked:
            ctx.tracking.artifact(tracked, "weights", version.artifacts[keys.ROLE_WEIGHTS].path, WEIGHTS_NAME)
            ctx.tracking.finish(tracked, "FINISHED", test.metrics, version.ref)
    if test.failed:
        ctx.progress.warn(f"{version.ref} was registered without {', '.join(test.failed)}: {test.failure()}")
    return FinetuneResult(version, test, state.history)


def _score(ctx: Context, run: Run, model: torch.nn.Module, tta_flip: bool,
           val_logits: torch.Tensor | None = None) -> Scored:
    """The best model on validation (what choices between models use) and, once, on test (what is
    reported); both logits are kept for paired comparisons. ``val_logits``: the kept epoch's, from
    training (the same weights, the same images), so validation is not predicted twice."""
    val = None
    if run.data.val is not None:
        if val_logits is None:
            val_logits = predict(model, run.data.val.images, run.data.val.labels, run.pre, run.device,
                                 tta_flip=tta_flip, amp_dtype=run.amp)
        val = score_logits(ctx.catalogue, run.task, val_logits, run.data.val.labels, run.data.class_names)
    logits = predict(model, run.data.test.images, run.data.test.labels, run.pre, run.device, tta_flip=tta_flip,
                     amp_dtype=run.amp)
    test = score_logits(ctx.catalogue, run.task, logits, run.data.test.labels, run.data.class_names)
    sets = _eval_sets(run)
    if val is not None:
        ctx.progress.info("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in val.metrics.items())
                          + f" ({sets['val'].text()})")
    ctx.progress.info("test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.metrics.items())
                      + f" ({sets['test'].text()})")
    return Scored(val, test, val_logits, logits)


def _finish_distributed(ctx: Context, run: Run, model: torch.nn.Module, state: FitState, *, name: str | None,
                        alias: str | None, tta_flip: bool, tracked: TrackedRun | None = None) -> FinetuneResult:
    """Rank 0 tests and registers; every rank returns the same result (and checks it trained the
    same weights: a rank that drifted would mean the shards were not averaged)."""
    assert run.dist is not None
    identical = weights_identical(model)
    if not identical:
        ctx.progress.warn("the ranks finished with different weights; rank 0's are registered")
    info = {**run.dist.describe(), "weights_identical": identical}
    shared: Any = None
    if run.dist.main:
        scored = _score(ctx, run, model, tta_flip)
        test = scored.test
        version = register(ctx, run, model, state, scored, name=name, alias=alias, distributed=info)
        ctx.progress.info(f"registered {version.ref} (rank 0 of {run.dist.world})")
        if tracked:
            ctx.tracking.finish(tracked, "FINISHED", test.metrics, version.ref)
        shared = (version.ref, test)
    ref, test = share(shared, run.dist)
    finish()
    return FinetuneResult(ctx.store.get(ref), test, state.history)
