"""A training recipe: the task protocol's budget, overridden by flags, plus the classic defaults."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from registry import Budget, Task, UsageError

STRATEGIES = ("linear", "partial", "full")
"""linear: new head on a frozen backbone; partial: also the last N blocks; full: everything."""
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step")
KEEP_EPOCHS = ("best", "last")
"""best: validate after every epoch and keep the best one; last: validate once, after the last
epoch, and keep it (a cosine schedule's last epoch is nearly always the best: saves a prediction
over the validation images per epoch)."""
BUDGETS = ("quick", "standard", "full")
PRETRAIN_METHODS = ("supervised", "autoencoder", "contrastive")
"""supervised: learn the source labels; autoencoder: reconstruct the images; contrastive: SimCLR,
two augmented views of an image agree (the last two never read labels)."""


@dataclass(frozen=True)
class Recipe:
    """Everything that decides what a training run computes (and so its fingerprint)."""

    strategy: str = "full"
    partial_blocks: int = 1
    optimizer: str = "sgd"
    lr: float = 0.05
    backbone_lr_mult: float | None = None  # None: 0.1 for pretrained weights, 1.0 from scratch
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs: int = 3
    batch_size: int = 128
    warmup_epochs: float = 0.5
    schedule: str = "cosine"
    label_smoothing: float = 0.1
    val_fraction: float = 0.1  # of the whole training split, stratified, drawn before train_limit
    val_limit: int | None = 10_000  # at most this many validation images (+-0.6 points on a paired difference)
    patience: int | None = None
    keep_epoch: str = "best"
    train_limit: int | None = None
    test_limit: int | None = None
    input_size: int | None = None
    augmentation: tuple[str, ...] | None = None
    seed: int = 0
    budget: str = "quick"

    def __post_init__(self) -> None:
        for param in _FLOAT_FIELDS:  # nan and inf pass every range check below (comparisons with nan are false)
            value = getattr(self, param)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"{{param}} must be a finite number, not {value}", param=param)
        checks = [
            ("strategy", self.strategy in STRATEGIES, f"must be one of {', '.join(STRATEGIES)}"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"must be one of {', '.join(OPTIMIZERS)}"),
            ("schedule", self.schedule in SCHEDULES, f"must be one of {', '.join(SCHEDULES)}"),
            ("keep_epoch", self.keep_epoch in KEEP_EPOCHS, f"must be one of {', '.join(KEEP_EPOCHS)}"),
            ("patience", self.patience is None or self.val_fraction > 0,
             "needs validation images to stop on: it cannot go with {param:val_fraction} 0"),
            ("patience", self.patience is None or self.keep_epoch == "best",
             "needs a validation score every epoch: it cannot go with {param:keep_epoch} last"),
            ("epochs", self.epochs >= 1, "must be at least 1"),
            ("batch_size", self.batch_size >= 1, "must be at least 1"),
            ("lr", self.lr > 0, "must be positive"),
            ("val_fraction", 0 <= self.val_fraction < 1, "must be in [0, 1)"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "must be in [0, 1)"),
            ("train_limit", self.train_limit is None or self.train_limit > 0, "must be positive"),
            ("val_limit", self.val_limit is None or self.val_limit > 0, "must be positive"),
            ("input_size", self.input_size is None or self.input_size >= 8, "must be at least 8"),
        ]
        for param, ok, problem in checks:
            if not ok:
                raise UsageError("{param} " + problem, param=param)

    def as_dict(self) -> dict[str, Any]:
        """The fields, for fingerprints and the store; a field added later is left out at its
        default, so the fingerprints of runs recorded before it existed stay the same."""
        out = dataclasses.asdict(self)
        for name, default in _LATER_FIELDS.items():
            if out[name] == default:
                del out[name]
        return out

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


_LATER_FIELDS: dict[str, Any] = {"keep_epoch": "best"}
_FLOAT_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe) if f.type in ("float", "float | None"))


def recipe_for(task: Task, budget: str = "quick", **overrides: Any) -> Recipe:
    """The task's ``budget`` as a Recipe; ``overrides`` set to ``None`` are ignored."""
    budgets = task.protocol.budgets
    if budget not in budgets:
        raise UsageError(f"task {task.name} has no {{param}} {budget!r}; use {', '.join(budgets)}", param="budget")
    b: Budget = budgets[budget]
    base: dict[str, Any] = {
        "epochs": b.epochs, "batch_size": b.batch_size, "lr": b.lr, "weight_decay": b.weight_decay,
        "train_limit": b.train_limit, "test_limit": b.test_limit, "input_size": b.input_size,
        "augmentation": b.augmentation, "budget": budget,
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    if base.get("optimizer") == "adamw" and "lr" not in {k for k, v in overrides.items() if v is not None}:
        base["lr"] = 1e-3
        base.setdefault("weight_decay", 0.05)
    return Recipe(**base)
