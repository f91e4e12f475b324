"""A training recipe: the task protocol's budget, overridden by flags, plus the classic defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harness.train.freeze import STRATEGIES
from registry import Budget, Task, UsageError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step")


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
    val_fraction: float = 0.1
    patience: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    input_size: int | None = None
    augmentation: tuple[str, ...] | None = None
    seed: int = 0
    budget: str = "quick"

    def __post_init__(self) -> None:
        checks = [
            (self.strategy in STRATEGIES, f"--strategy must be one of {', '.join(STRATEGIES)}"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (0 <= self.val_fraction < 1, "--val-fraction must be in [0, 1)"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (self.train_limit is None or self.train_limit > 0, "--train-limit must be positive"),
            (self.input_size is None or self.input_size >= 8, "--input-size must be at least 8"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def recipe_for(task: Task, budget: str = "quick", **overrides: Any) -> Recipe:
    """The task's ``budget`` as a Recipe; ``overrides`` set to ``None`` are ignored."""
    budgets = task.protocol.budgets
    if budget not in budgets:
        raise UsageError(f"task {task.name} has no budget {budget!r}; use {', '.join(budgets)}")
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
