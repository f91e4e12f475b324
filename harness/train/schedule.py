"""Learning-rate schedules: linear warmup, then cosine decay or step decay (per optimizer step)."""

from __future__ import annotations

import math

from registry import UsageError


class WarmupSchedule:
    """A picklable LR multiplier for ``LambdaLR``: warmup over ``warmup`` steps, then decay."""

    def __init__(self, total: int, warmup: int, kind: str = "cosine", steps: tuple[float, ...] = (0.5, 0.75),
                 gamma: float = 0.1) -> None:
        if kind not in ("cosine", "step"):
            raise UsageError(f"unknown {{param}} {kind!r}; use cosine or step", param="schedule")
        self.total = max(1, total)
        self.warmup = max(0, min(warmup, self.total - 1))
        self.kind = kind
        self.steps = steps
        self.gamma = gamma

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        if self.kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return self.gamma ** sum(progress >= s for s in self.steps)
