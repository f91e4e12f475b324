"""Built-in metrics: quality metrics over logits (torchmetrics) and efficiency metrics over a model.

Quality metrics take ``(logits, targets, num_classes)`` for a whole split; the core validates
labels beforehand (torchmetrics gives an unrelated shape error for an out-of-range label).
"""

from __future__ import annotations

from typing import Any

import harness
from registry import Metric


def accuracy(logits: Any, targets: Any, num_classes: int) -> float:
    from torchmetrics.functional.classification import multiclass_accuracy

    return float(multiclass_accuracy(logits, targets, num_classes, average="micro"))


def top5_accuracy(logits: Any, targets: Any, num_classes: int) -> float:
    from torchmetrics.functional.classification import multiclass_accuracy

    return float(multiclass_accuracy(logits, targets, num_classes, average="micro",
                                     top_k=min(5, num_classes)))


def macro_precision(logits: Any, targets: Any, num_classes: int) -> float:
    from torchmetrics.functional.classification import multiclass_precision

    return float(multiclass_precision(logits, targets, num_classes, average="macro"))


def macro_recall(logits: Any, targets: Any, num_classes: int) -> float:
    from torchmetrics.functional.classification import multiclass_recall

    return float(multiclass_recall(logits, targets, num_classes, average="macro"))


def macro_f1(logits: Any, targets: Any, num_classes: int) -> float:
    from torchmetrics.functional.classification import multiclass_f1_score

    return float(multiclass_f1_score(logits, targets, num_classes, average="macro"))


def expected_calibration_error(logits: Any, targets: Any, num_classes: int) -> float:
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs = logits.float().softmax(dim=1)
    return float(multiclass_calibration_error(probs, targets, num_classes, n_bins=15, norm="l1"))


def params(model: Any, example_input: Any) -> float:
    from harness.models import count_params

    return float(count_params(model))


def flops(model: Any, example_input: Any) -> float:
    from harness.models import count_flops

    return float(count_flops(model, int(example_input.shape[-1]), int(example_input.shape[1])))


def size_mb(model: Any, example_input: Any) -> float:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


@harness.hookimpl
def register_metrics(register: Any) -> None:
    quality = [
        ("accuracy", accuracy, "top-1 accuracy"),
        ("top5_accuracy", top5_accuracy, "top-5 accuracy (top-k with k = min(5, classes))"),
        ("macro_precision", macro_precision, "precision averaged over classes"),
        ("macro_recall", macro_recall, "recall averaged over classes"),
        ("macro_f1", macro_f1, "F1 averaged over classes"),
    ]
    for name, fn, text in quality:
        register(Metric(name=name, kind="quality", higher_is_better=True, unit="fraction",
                        compute=fn, description=text))
    register(Metric(name="ece", kind="quality", higher_is_better=False, unit="fraction",
                    compute=expected_calibration_error,
                    description="expected calibration error, 15 equal-width bins, L1"))
    register(Metric(name="params", kind="efficiency", higher_is_better=False, unit="parameters",
                    compute=params, description="number of parameters"))
    register(Metric(name="flops", kind="efficiency", higher_is_better=False,
                    unit="FLOPs (2 per multiply-add)", compute=flops,
                    description="FLOPs of one forward pass at batch 1 and the given input size"))
    register(Metric(name="size_mb", kind="efficiency", higher_is_better=False, unit="MB (1e6 bytes)",
                    compute=size_mb, description="bytes of parameters and buffers"))
