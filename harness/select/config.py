"""What a selection is asked to do, frozen before any work starts (and validated then)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.train.recipe import BUDGETS
from registry import UsageError

PREFER = ("best", "fastest", "smallest")
"""How the choice falls among the rows tied with the best on validation (see :func:`harness.select.choose.decide`)."""

PRESCREENS = ("logme", "knn", "linear", "sfda")
"""Transferability prescreens, all higher-is-better (see :mod:`harness.select.prescreen`)."""


@dataclass(frozen=True)
class BenchEffort:
    """How hard select's latency benchmark tries: rounds (one process per runtime each), timed
    iterations per batch size (at least; the worker repeats fast models for a stable median) and
    the runtimes measured."""

    rounds: int
    iters: int
    runtimes: tuple[str, ...]


BENCH_EFFORT = {
    # quick: ONNX Runtime only (the latency the table and the constraints use); eager PyTorch needs
    # a torch process per round (~4 s a candidate here) and is measured at the longer budgets.
    "quick": BenchEffort(1, 20, ("onnxruntime",)),
    "standard": BenchEffort(3, 20, ("torch", "onnxruntime")),
    "full": BenchEffort(3, 20, ("torch", "onnxruntime")),
}
"""Budget -> the latency benchmark select runs."""

PRESCREEN_SAMPLES = 1000
"""Training images the prescreen extracts features from."""

PARITY_SAMPLES = 256
"""Test images ONNX Runtime is compared with PyTorch on."""


@dataclass(frozen=True)
class Constraints:
    """Limits a chosen model must meet; ``None`` means no limit."""

    max_latency_ms: float | None = None  # ONNX Runtime, batch 1, median
    max_params: float | None = None
    max_size_mb: float | None = None     # the ONNX file

    def __post_init__(self) -> None:
        for param in ("max_latency_ms", "max_params", "max_size_mb"):
            value = getattr(self, param)
            if value is not None and value <= 0:
                raise UsageError("{param} must be positive", param=param)


@dataclass(frozen=True)
class SelectConfig:
    """One selection: task, budget, candidates, prescreen, constraints, seeds and overrides.

    ``recipe`` holds training overrides for every candidate (``epochs``, ``lr``, ``strategy``...,
    the fields of :class:`~harness.train.recipe.Recipe`); ``None`` values are ignored.
    """

    task: str
    budget: str = "quick"
    candidates: tuple[str, ...] | None = None
    prescreen: str | None = None
    top_k: int | None = None
    constraints: Constraints = field(default_factory=Constraints)
    seeds: int = 1
    use_cache: bool = True
    offline: bool = False
    threads: int | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    ignore_data_errors: bool = False  # go on when test images are exact copies of training images
    time_limit_s: float | None = None  # successive halving within this many seconds of training
    prefer: str = "best"  # among rows tied with the best on validation: best | fastest | smallest
    then: str | None = None  # a larger budget the top_k rows of this one are trained again at
    then_epochs: int | None = None  # that budget's epochs, overridden

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise UsageError(f"{{param}} must be one of {', '.join(BUDGETS)}", param="budget")
        if self.seeds < 1:
            raise UsageError("{param} must be at least 1", param="seeds")
        if self.prescreen is not None and self.prescreen not in PRESCREENS:
            raise UsageError(f"{{param}} must be one of {', '.join(PRESCREENS)}", param="prescreen")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError("{param} must be at least 1", param="top_k")
        if self.top_k is not None and self.prescreen is None and self.then is None:
            raise UsageError("{param} keeps the K best of a prescreen, or trains the K best again at a larger "
                             "budget: give one of the two", param="top_k")
        if self.top_k is not None and self.prescreen is not None and self.then is not None:
            raise UsageError("{param} is ambiguous with both a prescreen and a larger budget; use one of them",
                             param="top_k")
        if self.prefer not in PREFER:
            raise UsageError(f"{{param}} must be one of {', '.join(PREFER)}", param="prefer")
        if self.then is not None and (self.then not in BUDGETS
                                      or BUDGETS.index(self.then) <= BUDGETS.index(self.budget)):
            larger = ", ".join(BUDGETS[BUDGETS.index(self.budget) + 1:]) or "none"
            raise UsageError(f"{{param}} must be a budget larger than {self.budget} ({larger})", param="then")
        if self.then_epochs is not None and (self.then is None or self.then_epochs < 1):
            raise UsageError("{param} sets the larger budget's epochs: it needs that budget, and at least 1",
                             param="then_epochs")
        if self.time_limit_s is not None and (self.time_limit_s <= 0 or self.seeds != 1):
            raise UsageError("{param} must be positive and works with one seed (--seeds 1)", param="time_limit")
        if self.threads is not None and self.threads < 1:
            raise UsageError("{param} must be at least 1", param="threads")

    @property
    def bench_effort(self) -> BenchEffort:
        """The latency benchmark at this budget."""
        return BENCH_EFFORT[self.budget]
