"""What a selection is asked to do, frozen before any work starts (and validated then)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from harness.train.recipe import BUDGETS, Recipe
from registry import UsageError

if TYPE_CHECKING:
    from harness.evaluate.int8 import Int8Policy

PREFER = ("best", "fastest", "smallest")
"""How the choice falls among the rows tied with the best on validation (see :func:`harness.select.choose.decide`)."""

PRESCREENS = ("logme", "knn", "linear", "sfda", "ncti")
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
            if value is not None and not (math.isfinite(value) and value > 0):  # nan passes `<= 0`
                raise UsageError(f"{{param}} must be positive and finite, not {value}", param=param)


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
    halving: bool | None = None  # successive halving: None the budget's (its halving_epochs, one seed), True/False
    prefer: str = "best"  # among rows tied with the best on validation: best | fastest | smallest
    then: str | None = None  # a larger budget the top_k rows of this one are trained again at
    then_epochs: int | None = None  # that budget's epochs, overridden
    robustness: bool | None = None  # the corruption suite: True always, False never, None where cheap (AUTO_SHARE)
    int8: Int8Policy | None = None  # --int8: measure whether INT8 pays for each row (None: not measured)

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
            raise UsageError("{param} must be positive and works with one seed ({param:seeds} 1)", param="time_limit")
        if self.halving and self.seeds != 1:
            raise UsageError("{param} works with one seed ({param:seeds} 1)", param="halving")
        if self.halving is False and self.time_limit_s is not None:
            raise UsageError("{param} is successive halving within a time; it cannot go with halving off",
                             param="time_limit")
        if self.threads is not None and self.threads < 1:
            raise UsageError("{param} must be at least 1", param="threads")

    @property
    def bench_effort(self) -> BenchEffort:
        """The latency benchmark at this budget."""
        return BENCH_EFFORT[self.budget]

    @classmethod
    def from_options(cls, task: str, *, candidates: str | Sequence[str] | None = None,
                     time_limit: str | float | None = None, max_latency_ms: float | None = None,
                     max_params: float | None = None, max_size_mb: float | None = None, int8: bool = False,
                     int8_max_drop: float | None = None, int8_min_speedup: float | None = None,
                     recipe: dict[str, Any] | None = None, **settings: Any) -> SelectConfig:
        """The one constructor of a selection from what a user types, shared by ``harness select``
        and :func:`harness.select_models` so that a flag and a keyword cannot drift apart.

        ``candidates``: a list, or names separated by commas; ``time_limit``: seconds, or text
        (``90s``, ``10m``, ``1.5h``); the ``max_*`` values are the :class:`Constraints`; ``int8``
        with ``int8_max_drop``/``int8_min_speedup`` the INT8 policy; ``recipe`` the training
        overrides (a :class:`~harness.train.recipe.Recipe` field each; ``None`` values ignored).
        Every other keyword is a field of this class (``budget``, ``seeds``, ``prefer``...).
        """
        unknown = sorted(set(settings) - ({f.name for f in fields(cls)} - {"constraints", "time_limit_s"}))
        if unknown:
            raise UsageError(f"unknown selection option {unknown[0]!r}; use a field of SelectConfig or a recipe "
                             f"override ({', '.join(RECIPE_OVERRIDES)})")
        if isinstance(candidates, str):
            candidates = [c for c in candidates.split(",") if c.strip()]
        return cls(task=task, candidates=tuple(candidates) if candidates else None,
                   constraints=Constraints(max_latency_ms, max_params, max_size_mb),
                   time_limit_s=_seconds(time_limit), int8=int8_policy(int8, int8_max_drop, int8_min_speedup),
                   recipe=recipe_overrides(recipe or {}), **settings)


RECIPE_OVERRIDES = tuple(f.name for f in fields(Recipe) if f.name not in ("budget", "seed"))
"""What ``SelectConfig.recipe`` may override: the recipe's fields but its budget and seed (the selection's own)."""


def recipe_overrides(given: dict[str, Any]) -> dict[str, Any]:
    """``given`` without its ``None`` values, refused when a key is not a recipe field."""
    unknown = sorted(set(given) - set(RECIPE_OVERRIDES))
    if unknown:
        raise UsageError(f"unknown recipe override {unknown[0]!r}; use one of {', '.join(RECIPE_OVERRIDES)}")
    return {k: v for k, v in given.items() if v is not None}


def _seconds(limit: str | float | None) -> float | None:
    """A time limit given as seconds or as text (``90s``, ``10m``, ``1.5h``)."""
    if limit is None or not isinstance(limit, str):
        return None if limit is None else float(limit)
    from harness.select.halving import parse_duration

    return parse_duration(limit)


def int8_policy(int8: bool, max_drop: float | None = None, min_speedup: float | None = None) -> Int8Policy | None:
    """The INT8 policy a selection measures each row against (None without ``int8``; its limits
    default to :class:`~harness.evaluate.int8.Int8Policy`'s)."""
    if not int8:
        if max_drop is not None or min_speedup is not None:
            raise UsageError("{param} applies to {param:int8}: add it",
                             param="int8_max_drop" if max_drop is not None else "int8_min_speedup")
        return None
    from harness.evaluate.int8 import Int8Policy

    default = Int8Policy()
    return Int8Policy(default.max_drop_points if max_drop is None else max_drop,
                      default.min_speedup if min_speedup is None else min_speedup)
