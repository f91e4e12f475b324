"""``select --then BUDGET --top-k K``: does the quick ranking hold at a larger budget?

A quick budget is cheap because it trains little, and a model that learns fast is not always the one
that ends best. So the K best rows of the first selection *on validation* are trained again, from
their own starting weights, at the larger budget; the model shipped is chosen among those (on
validation, as always), and :class:`BudgetCheck` reports how well the first order predicted the
second: Kendall and weighted tau with permutation p-values over the K candidates, and the regret of
trusting the quick order, i.e. how much the larger budget's best beats the quick winner trained at
the larger budget, on validation and on test.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.select.choose import top_by_validation
from harness.select.rankcheck import Agreement, agreement
from harness.train.recipe import recipe_for

if TYPE_CHECKING:
    from harness.context import Context
    from harness.select.config import SelectConfig
    from harness.select.executor import Executor
    from harness.select.run import SelectResult

CARRIED_OVERRIDES = ("strategy", "input_size")
"""Recipe overrides of the first budget that the larger one keeps; epochs, limits, batch size and
learning rate are the larger budget's own (``then_epochs`` overrides its epochs)."""
DEFAULT_TOP_K = 2


@dataclass(frozen=True)
class BudgetCheck:
    """How the first budget's order (validation) compared with the larger budget's on the same candidates."""

    first: str
    larger: str
    candidates: tuple[str, ...]
    order: Agreement  # first budget's validation scores as the prediction, the larger's as the truth
    first_winner: str | None
    larger_winner: str | None
    regret_val: float | None  # larger-budget validation: best row minus the first winner's row
    regret_test: float | None  # the same on test (reported, never used to choose)

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in dataclasses.asdict(self).items() if k != "order"},
                "order": dataclasses.asdict(self.order)}

    def lines(self) -> list[str]:
        same = self.first_winner == self.larger_winner
        out = [f"{self.first} vs {self.larger} budget, order on validation {self.order.text()}"]
        if self.order.n < 3:
            out[0] = (f"{self.first} vs {self.larger} budget: {len(self.candidates)} candidate(s) trained again; "
                      "a rank agreement needs 3 or more (use --top-k 3 or more to measure it)")
        verdict = ("the quick winner stayed the best" if same else
                   f"the quick winner ({self.first_winner}) was not the larger budget's best ({self.larger_winner})")
        regret = ", ".join(f"{name} {value:+.4f}" for name, value in (("validation", self.regret_val),
                                                                     ("test", self.regret_test))
                           if value is not None)
        out.append(f"  {verdict}; regret of trusting the quick order: {regret or 'n/a'}")
        return out


def _primary(row: Any, split: str) -> float | None:
    value = row.val if split == "val" else row.primary_value
    return value if value is not None and math.isfinite(value) else None


def budget_check(first: SelectResult, second: SelectResult) -> BudgetCheck:
    """Compare the first selection's validation order with the second's, on the candidates both have."""
    sign = 1 if second.higher_is_better else -1
    larger = {r.candidate: r for r in second.rows if _primary(r, "val") is not None}
    quick = {r.candidate: sign * r.val for r in first.rows if r.candidate in larger and r.val is not None}
    truth = {c: sign * _primary(r, "val") for c, r in larger.items()}  # type: ignore[operator]
    order = agreement(f"{first.budget} order", quick, truth)
    first_winner = first.winner.candidate if first.winner else None
    best = max(larger.values(), key=lambda r: sign * r.val) if larger else None  # type: ignore[operator]

    def regret(split: str) -> float | None:
        if best is None or first_winner not in larger:
            return None
        top, mine = _primary(best, split), _primary(larger[first_winner], split)
        return None if top is None or mine is None else round(sign * (top - mine), 4)

    return BudgetCheck(first.budget, second.budget, tuple(larger), order, first_winner,
                       second.winner.candidate if second.winner else None, regret("val"), regret("test"))


def select_then(ctx: Context, config: SelectConfig, executor: Executor | None = None) -> SelectResult:
    """The first selection at ``config.budget``, then its ``top_k`` best trained again at ``config.then``."""
    from harness.select.run import select_once

    started = time.perf_counter()
    assert config.then is not None
    task = ctx.catalogue.task(config.task)  # once, for both budgets
    recipe_for(task, config.then, epochs=config.then_epochs)  # fails before any work
    first = select_once(ctx, config, executor, set_alias=False, task=task)
    top = top_by_validation(first.rows, config.top_k or DEFAULT_TOP_K, first.higher_is_better)
    if not top:
        ctx.progress.warn(f"no candidate of the {config.budget} budget could be chosen; nothing trained at "
                          f"{config.then}")
        return first
    ctx.progress.info(f"training the {len(top)} best on validation again at the {config.then} budget: "
                      + ", ".join(r.candidate for r in top))
    overrides = {k: v for k, v in config.recipe.items() if k in CARRIED_OVERRIDES}
    if config.then_epochs is not None:
        overrides["epochs"] = config.then_epochs
    larger = dataclasses.replace(config, budget=config.then, candidates=tuple(r.candidate for r in top),
                                 prescreen=None, top_k=None, then=None, then_epochs=None, time_limit_s=None,
                                 recipe=overrides)
    second = select_once(ctx, larger, executor, task=task)
    stages = {f"{config.budget}: {k}": v for k, v in first.stage_seconds.items()}
    stages.update({f"{config.then}: {k}": v for k, v in second.stage_seconds.items()})
    return dataclasses.replace(second, earlier=first, budget_check=budget_check(first, second),
                               seconds=round(time.perf_counter() - started, 1), stage_seconds=stages)
