"""Fine-tune a backbone (or a registered model) on a task and register the result.

``finetune()`` is what ``harness finetune`` calls: resolve the model, load the task's data once,
carve a validation split from train (never test), train with the recipe, keep the best epoch by
the task's primary metric, evaluate on test, and register a new model version with its lineage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from typing import Any

import torch

from harness.data import load_split
from harness.environment import device_description, library_versions, select_device
from harness.sources import ModelSource, pretrained_version, resolve_model
from harness.train.batches import Preprocess, TensorBatches
from harness.train.engine import FitConfig, fit, load_checkpoint, log
from harness.train.evaluate import Evaluation, predict, score
from harness.train.freeze import apply_strategy, param_groups
from harness.train.recipe import Recipe
from harness.train.schedule import WarmupSchedule
from harness.weights import save_weights
from registry import Catalogue, ImageSplit, Task, UsageError
from registry.store import ModelStore, ModelVersion


@dataclass
class TaskData:
    train: ImageSplit
    val: ImageSplit | None
    test: ImageSplit
    class_names: tuple[str, ...]
    num_classes: int


def subset(split: ImageSplit, limit: int | None, seed: int) -> ImageSplit:
    """A seeded random subset of ``limit`` images (the whole split when it is smaller)."""
    if limit is None or limit >= len(split):
        return split
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:limit]
    index, _ = index.sort()
    return ImageSplit(split.images[index], split.labels[index], split.class_names)


def split_train_val(train: ImageSplit, recipe: Recipe) -> tuple[ImageSplit, ImageSplit | None]:
    """Carve ``recipe.val_fraction`` of train off as validation (seeded; test is never touched)."""
    n_val = int(len(train) * recipe.val_fraction)
    if n_val == 0:
        return train, None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(recipe.seed + 2))
    val_idx, train_idx = order[:n_val].sort()[0], order[n_val:].sort()[0]
    return (ImageSplit(train.images[train_idx], train.labels[train_idx], train.class_names),
            ImageSplit(train.images[val_idx], train.labels[val_idx], train.class_names))


def task_data(catalogue: Catalogue, task: Task, recipe: Recipe, *, data_dir: str | None = None,
              download: bool = False, image_size: int | None = None, need_train: bool = True) -> TaskData:
    """Load the task's splits once; limit them; carve validation from train with the recipe's seed."""
    dataset = catalogue.datasets.get(task.dataset)
    test = load_split(catalogue, task.dataset, "test", data_dir=data_dir, download=download, image_size=image_size)
    class_names = test.class_names or dataset.class_names or ()
    num_classes = dataset.num_classes or len(class_names)
    test = subset(test, recipe.test_limit, recipe.seed + 1)
    if not need_train:
        return TaskData(test, None, test, tuple(class_names), num_classes)
    train = load_split(catalogue, task.dataset, "train", data_dir=data_dir, download=download, image_size=image_size)
    train, val = split_train_val(subset(train, recipe.train_limit, recipe.seed), recipe)
    if len(train) == 0:
        raise UsageError(f"task {task.name}: no training images left after the limit and validation split")
    return TaskData(train, val, test, tuple(class_names), num_classes)


def preprocess_for(source: ModelSource, task: Task, recipe: Recipe, augment: bool = True) -> Preprocess:
    """Input size from the protocol (or flag), fixed-size backbones win; mean/std from the weights."""
    backbone, tag = source.backbone, source.tag
    size = recipe.input_size or task.protocol.input_size
    if backbone.fixed_input_size:
        size = (tag.input_size if tag and tag.input_size else None) or backbone.input_size
    size = max(size, backbone.min_input_size)
    previous = source.preprocess or {}
    mean = previous.get("mean") or (tag.mean if tag and tag.mean else None) or backbone.mean
    std = previous.get("std") or (tag.std if tag and tag.std else None) or backbone.std
    return Preprocess(input_size=size, channels=backbone.channels, mean=tuple(mean), std=tuple(std),
                      augmentation=(recipe.augmentation if recipe.augmentation is not None
                                    else task.protocol.augmentation) if augment else (),
                      crop_padding=task.protocol.crop_padding)


def fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class FinetuneResult:
    version: ModelVersion
    test: Evaluation
    history: list[dict[str, Any]]


def finetune(catalogue: Catalogue, store: ModelStore, model_ref: str, task_name: str, recipe: Recipe, *,
             name: str | None = None, data_dir: str | None = None, download: bool = False,
             device: str = "auto", resume: bool = False, quiet: bool = False, compile: bool = False,
             alias: str | None = None, tta_flip: bool = False, backbone: str | None = None) -> FinetuneResult:
    """Fine-tune ``model_ref`` on ``task_name``; returns the registered version and its test scores."""
    task = catalogue.tasks.get(task_name)
    metrics = [catalogue.metrics.get(m) for m in task.metrics]
    primary = metrics[0]
    dev = select_device(device)
    source = resolve_model(catalogue, store, model_ref, backbone=backbone)
    pre = preprocess_for(source, task, recipe)
    data = task_data(catalogue, task, recipe, data_dir=data_dir, download=download, image_size=pre.input_size)
    log(f"{model_ref} on {task.name}: {len(data.train)} train / {len(data.val) if data.val else 0} val / "
        f"{len(data.test)} test images at {pre.input_size}px, strategy {recipe.strategy}, "
        f"{recipe.epochs} epochs, {device_description(dev)}", quiet)

    parent = source.version or pretrained_version(catalogue, store, source)
    torch.manual_seed(recipe.seed)
    model = source.build(catalogue, data.num_classes).to(dev)
    if pre.channels_last:
        model = model.to(memory_format=torch.channels_last)
    frozen = apply_strategy(model, source.backbone.head, recipe.strategy, recipe.partial_blocks)
    pretrained = source.tag is not None or source.weights_file is not None
    if recipe.backbone_lr_mult is None:
        recipe = dataclasses.replace(recipe, backbone_lr_mult=0.1 if pretrained else 1.0)
    groups = param_groups(model, source.backbone.head, recipe.lr, recipe.backbone_lr_mult, recipe.weight_decay)
    if recipe.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
    else:
        optimizer = torch.optim.AdamW(groups, lr=recipe.lr)
    generator = torch.Generator().manual_seed(recipe.seed)
    batches = TensorBatches(data.train.images, data.train.labels, recipe.batch_size, pre, dev, train=True,
                            generator=generator)
    if len(batches) == 0:
        raise UsageError(f"only {len(data.train)} training images for batch size {recipe.batch_size}; "
                         "lower --batch-size")
    total = recipe.epochs * len(batches)
    schedule = WarmupSchedule(total, int(recipe.warmup_epochs * len(batches)), recipe.schedule)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    amp = torch.bfloat16 if dev.type == "cuda" else None
    forward = torch.compile(model) if compile else model

    def validate(m: torch.nn.Module) -> float:
        logits = predict(forward, data.val.images, data.val.labels, pre, dev, amp_dtype=amp)
        return float(primary.compute(logits, data.val.labels, data.num_classes))

    run_id = fingerprint(model_ref, source.weights_file and str(source.weights_file), task.name,
                         recipe.as_dict(), pre.as_dict(), str(dev))
    run_dir = store.home / "runs" / run_id
    checkpoint = run_dir / "checkpoint.pt"
    state = None
    if resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, model, optimizer, scheduler, generator, run_id)
        log(f"resuming run {run_id} after epoch {state.epoch}", quiet)
    elif resume:
        log(f"no checkpoint for run {run_id}; starting from the beginning", quiet)
    config = FitConfig(epochs=recipe.epochs, higher_is_better=primary.higher_is_better, patience=recipe.patience,
                       label_smoothing=recipe.label_smoothing, amp_dtype=amp, quiet=quiet, checkpoint=checkpoint,
                       fingerprint=run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = fit(forward, batches, optimizer, scheduler, config, validate if data.val else None, frozen, state)
    model.load_state_dict(state.best_state)
    logits = predict(model, data.test.images, data.test.labels, pre, dev, tta_flip=tta_flip, amp_dtype=amp)
    test = score(catalogue, task, logits, data.test.labels, data.class_names)
    log("test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.metrics.items()), quiet)

    recorded_recipe = {**recipe.as_dict(), "preprocess": pre.as_dict(), "source": model_ref,
                       "best_epoch": state.best_epoch}
    weights_path = save_weights(model, run_dir / "weights.safetensors", {
        "backbone": source.backbone.name, "num_classes": data.num_classes, "class_names": list(data.class_names),
        "task": task.name, "preprocess": pre.as_dict()})
    version = store.register(
        name or task.name, backbone=source.backbone.name, kind="finetune", files={"weights": weights_path},
        parent=parent.id if parent else None, task=task.name, dataset=task.dataset,
        num_classes=data.num_classes, class_names=data.class_names, recipe=recorded_recipe,
        metrics={"test": test.metrics, "val": {primary.name: state.best_metric},
                 "train": {"loss": state.history[-1]["train_loss"],
                           "seconds": round(sum(h["seconds"] for h in state.history), 2),
                           "images_per_s": state.history[-1]["images_per_s"]},
                 "history": state.history},
        environment={**library_versions(), "device": device_description(dev)}, seed=recipe.seed,
        device=dev.type, alias=alias, artifact_meta={"weights": {"format": "safetensors"}},
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    log(f"registered {version.ref}", quiet)
    return FinetuneResult(version, test, state.history)
