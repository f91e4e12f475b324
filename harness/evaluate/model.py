"""``evaluate_model()``: load any MODEL, score it on a task's test split, record the scores."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.data.preprocess import resolve_preprocess
from harness.data.splits import load_test_split
from harness.environment import select_device
from harness.evaluate.predict import predict, score_logits
from harness.evaluate.report import EvaluationReport
from harness.models.availability import require_weights
from harness.models.sources import ModelSource, resolve_model
from harness.predictions.stored import EvalSet, differ_note, eval_set, stored_sets
from registry import UsageError, keys

if TYPE_CHECKING:
    from harness.context import Context


def _class_count(source: ModelSource, model_ref: str) -> int:
    """The width of the model's head: recorded with the version or file, else read from the weights."""
    num_classes = source.num_classes
    if num_classes is None and source.weights_file is not None:
        from harness.models.checkpoint import load_state_dict_file

        head = load_state_dict_file(source.weights_file).get(f"{source.backbone.head}.weight")
        num_classes = None if head is None else int(head.shape[0])
    if num_classes is None:
        raise UsageError(f"{model_ref} is not a classifier for a task (no class count); fine-tune it first")
    return num_classes


def evaluate_model(ctx: Context, model_ref: str, task_name: str | None = None, *, tta_flip: bool = False,
                   test_limit: int | None = None, backbone: str | None = None,
                   save: bool = True) -> EvaluationReport:
    """Score ``model_ref`` on the test split of ``task_name`` (default: the task it was trained for).

    With ``save`` the scores are recorded with the registry version under ``eval:TASK[...]``.
    """
    if test_limit is not None and test_limit < 1:
        raise UsageError("{param} must be at least 1", param="test_limit")
    source = resolve_model(ctx, model_ref, backbone=backbone)
    require_weights(source)  # before the data loads
    if save and source.version is not None:
        ctx.store.require_writable()  # before the data loads and the model predicts, not after
    task_name = task_name or (source.version.task if source.version else source.metadata.get("task"))
    if not task_name:
        raise UsageError(f"{model_ref} was not trained for a task; pass {{param}}", param="task_name")
    task = ctx.catalogue.task(task_name)
    num_classes = _class_count(source, model_ref)
    pre = resolve_preprocess(source, default_size=task.protocol.input_size)
    data = load_test_split(ctx, task, image_size=pre.input_size, limit=test_limit)
    if data.num_classes != num_classes:
        raise UsageError(f"{model_ref} predicts {num_classes} classes but task {task.name} has "
                         f"{data.num_classes}; fine-tune it on {task.name} first")
    device = select_device(ctx.device)
    model = source.build(num_classes).to(device)
    logits = predict(model, data.test.images, data.test.labels, pre, device, tta_flip=tta_flip)
    evaluation = score_logits(ctx.catalogue, task, logits, data.test.labels, data.class_names)
    here = eval_set("test", task.dataset, "test", data.test_ids, data.test_size)
    notes = _differs(source, task.name, task.primary_metric, here)
    for note in notes:
        ctx.progress.warn(note)
    if save and source.version is not None:
        key = keys.eval_key(task.name, tta_flip, test_limit)
        sets = {**source.version.metrics.get(keys.EVAL_SETS, {}), key: here.as_dict()}
        ctx.store.update_metrics(source.version.ref, {key: evaluation.metrics, keys.EVAL_SETS: sets})
    return EvaluationReport(source.label, task.name, tta_flip, evaluation, here, notes)


def _differs(source: ModelSource, task: str, primary: str, here: EvalSet) -> tuple[str, ...]:
    """A note when the version's recorded test score (from training or select) used other images."""
    version = source.version
    if version is None or version.task != task:
        return ()
    recorded = stored_sets(version).get("test")
    value = version.metrics.get(keys.TEST, {}).get(primary)
    if recorded is None or value is None:
        return ()
    note = differ_note(f"{version.ref}'s recorded test {primary} {value:.4f}", here, recorded)
    return (note,) if note else ()
