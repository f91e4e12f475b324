"""Typed results of evaluation. ``as_dict()`` gives the JSON that ``--format json`` prints and
the store keeps; its keys are the ones earlier versions wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall and F1 of one class, and how many test images it has."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.name, "precision": self.precision, "recall": self.recall, "f1": self.f1,
                "support": self.support}


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model on one split: every quality metric, per class, and the confusion matrix."""

    metrics: dict[str, float]
    per_class: tuple[ClassScores, ...]
    confusion: tuple[tuple[int, ...], ...]
    samples: int
    failed: dict[str, str] = field(default_factory=dict)  # metric -> why it has no score (raised, NaN)

    def as_dict(self) -> dict[str, Any]:
        data = {"metrics": self.metrics, "per_class": [c.as_dict() for c in self.per_class],
                "confusion_matrix": [list(row) for row in self.confusion], "samples": self.samples}
        if self.failed:
            data["failed_metrics"] = dict(self.failed)
        return data

    def failure(self) -> str | None:
        """One line naming every metric that failed, or None."""
        return "; ".join(self.failed.values()) or None


@dataclass(frozen=True)
class EvaluationReport:
    """What ``harness evaluate`` reports: which model, on which task, how, its scores, the images they
    were computed on (``eval_set``, an :class:`~harness.predictions.stored.EvalSet`) and ``notes``
    (e.g. that the version's recorded test score came from other images)."""

    model: str
    task: str
    tta_flip: bool
    evaluation: Evaluation
    eval_set: Any = None
    notes: tuple[str, ...] = ()

    @property
    def metrics(self) -> dict[str, float]:
        return self.evaluation.metrics

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (same as ``as_dict()``)."""
        return self.as_dict()

    def to_rows(self) -> list[dict[str, Any]]:
        """The per-class rows (class, precision, recall, f1, support)."""
        return [c.as_dict() for c in self.evaluation.per_class]

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "task": self.task, "tta_flip": self.tta_flip, **self.evaluation.as_dict(),
                "eval_set": self.eval_set.as_dict() if self.eval_set is not None else None, "notes": list(self.notes)}
