"""Evaluation: logits over a split, every metric of a task, per-class scores, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.data import check_labels
from harness.train.batches import Preprocess, TensorBatches
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


def per_class(confusion: torch.Tensor, class_names: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    for k in range(confusion.shape[0]):
        tp = int(confusion[k, k])
        fp = int(confusion[:, k].sum()) - tp
        fn = int(confusion[k, :].sum()) - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": class_names[k] if k < len(class_names) else str(k), "precision": round(precision, 4),
                     "recall": round(recall, 4), "f1": round(f1, 4), "support": tp + fn})
    return rows


@dataclass
class Evaluation:
    metrics: dict[str, float]
    per_class: list[dict[str, Any]]
    confusion: list[list[int]]
    samples: int

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "per_class": self.per_class, "confusion_matrix": self.confusion,
                "samples": self.samples}


def score(catalogue: Catalogue, task: Task, logits: torch.Tensor, labels: torch.Tensor,
          class_names: tuple[str, ...]) -> Evaluation:
    """Every quality metric of ``task`` on these logits, plus per-class scores and the confusion matrix."""
    num_classes = logits.shape[1]
    check_labels(labels, num_classes, f"task {task.name}")
    metrics = {}
    for name in task.metrics:
        metric = catalogue.metrics.get(name)
        if metric.kind == "quality":
            metrics[name] = round(float(metric.compute(logits, labels, num_classes)), 6)
    confusion = confusion_matrix(logits, labels, num_classes)
    return Evaluation(metrics, per_class(confusion, class_names), confusion.tolist(), int(labels.shape[0]))
