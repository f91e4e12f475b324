"""``evaluate_model()``: load any MODEL, score it on a task's test split, record the scores."""

from __future__ import annotations

from typing import Any

from harness.environment import select_device
from harness.sources import resolve_model
from harness.train.evaluate import predict, score
from harness.train.finetune import preprocess_for, task_data
from harness.train.recipe import Recipe
from registry import Catalogue, UsageError
from registry.store import ModelStore


def evaluate_model(catalogue: Catalogue, store: ModelStore, model_ref: str, task_name: str | None = None, *,
                   tta_flip: bool = False, test_limit: int | None = None, backbone: str | None = None,
                   data_dir: str | None = None, download: bool = False, device: str = "auto",
                   save: bool = True) -> dict[str, Any]:
    source = resolve_model(catalogue, store, model_ref, backbone=backbone)
    task_name = task_name or (source.version.task if source.version else source.metadata.get("task"))
    if not task_name:
        raise UsageError(f"{model_ref} was not trained for a task; pass --task")
    task = catalogue.tasks.get(task_name)
    num_classes = source.num_classes
    if num_classes is None and source.weights_file is not None:
        from harness.models import load_state_dict_file

        head = load_state_dict_file(source.weights_file).get(f"{source.backbone.head}.weight")
        num_classes = None if head is None else int(head.shape[0])
    if num_classes is None:
        raise UsageError(f"{model_ref} is not a classifier for a task (no class count); fine-tune it first")
    recipe = Recipe(test_limit=test_limit)
    pre = preprocess_for(source, task, recipe, augment=False)
    data = task_data(catalogue, task, recipe, data_dir=data_dir, download=download, image_size=pre.input_size,
                     need_train=False)
    if data.num_classes != num_classes:
        raise UsageError(f"{model_ref} predicts {num_classes} classes but task {task.name} has "
                         f"{data.num_classes}; fine-tune it on {task.name} first")
    dev = select_device(device)
    model = source.build(catalogue, num_classes).to(dev)
    logits = predict(model, data.test.images, data.test.labels, pre, dev, tta_flip=tta_flip)
    result = score(catalogue, task, logits, data.test.labels, data.class_names)
    report = {"model": source.version.ref if source.version else model_ref, "task": task.name,
              "tta_flip": tta_flip, **result.as_dict()}
    if save and source.version is not None:
        key = f"eval:{task.name}" + (":tta" if tta_flip else "") + (f":limit{test_limit}" if test_limit else "")
        store.update_metrics(source.version.ref, {key: result.metrics})
    return report
