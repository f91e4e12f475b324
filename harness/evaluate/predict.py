"""Evaluation: logits over a split, every metric of a task, per-class scores, confusion matrix."""

from __future__ import annotations

import torch
from torch import nn

from harness.data.batches import TensorBatches
from harness.data.loading import check_labels
from harness.data.preprocess import Preprocess
from harness.evaluate.metrics import score_all
from harness.evaluate.report import ClassScores, Evaluation
from registry import Catalogue, Task


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, pre: Preprocess,
            device: torch.device, batch_size: int = 256, tta_flip: bool = False,
            amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits (float32, on CPU) for every image; with ``tta_flip`` averaged with the mirror image."""
    model.eval()
    batches = TensorBatches(images, labels, batch_size, pre, device, train=False)
    chunks = []
    for inputs, _ in batches:
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            logits = model(inputs).float()
            if tta_flip:
                logits = (logits.softmax(1) + model(inputs.flip(-1)).float().softmax(1)).div(2).log()
        chunks.append(logits.cpu())
    return torch.cat(chunks)


def confusion_matrix(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted ones."""
    preds = logits.argmax(1)
    return torch.bincount(labels * num_classes + preds, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def per_class(confusion: torch.Tensor, class_names: tuple[str, ...]) -> tuple[ClassScores, ...]:
    """Precision, recall and F1 of each class (0 where undefined) from a confusion matrix."""
    rows = []
    for k in range(confusion.shape[0]):
        tp = int(confusion[k, k])
        fp = int(confusion[:, k].sum()) - tp
        fn = int(confusion[k, :].sum()) - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(ClassScores(class_names[k] if k < len(class_names) else str(k), round(precision, 4),
                                round(recall, 4), round(f1, 4), tp + fn))
    return tuple(rows)


def score_logits(catalogue: Catalogue, task: Task, logits: torch.Tensor, labels: torch.Tensor,
                 class_names: tuple[str, ...]) -> Evaluation:
    """Every quality metric of ``task`` on these logits, plus per-class scores and the confusion matrix.
    A metric that raises or returns NaN is left out of the scores and named in ``failed``."""
    num_classes = logits.shape[1]
    check_labels(labels, num_classes, f"task {task.name}")
    metrics, failed = score_all(catalogue, task, logits, labels, num_classes)
    confusion = confusion_matrix(logits, labels, num_classes)
    matrix = tuple(tuple(int(v) for v in row) for row in confusion.tolist())
    return Evaluation(metrics, per_class(confusion, class_names), matrix, int(labels.shape[0]), failed)
