"""How well did one order predict another, beyond what chance gives, and did it beat free orders?

A prescreen costs feature extraction on every candidate; it earns that only when its order agrees
with the fine-tuned order better than orders that cost nothing: ranking by parameter count (bigger
first) and by pretraining score (the source model's validation accuracy; a model trained from
scratch counts as 0). The same check tells whether a quick budget's order held at a larger one.

Agreement is Kendall's tau and, as the transferability literature reports it, weighted tau
(:func:`scipy.stats.weightedtau`, which weighs the top of the order most). Neither means anything
without its noise: with 12 candidates a random order gives weighted tau with a standard deviation of
about 0.27. So every :class:`Agreement` carries a **permutation p-value** (the share of random orders
of the same candidates that agree at least as well; seeded, :data:`PERMUTATIONS` draws), the null's
95th percentile of weighted tau, the number of candidates it covers, and the **first-pick regret**
(how much the truth's best beats the predicted order's first pick). One order "beats" another only
when a bootstrap over candidates puts the difference of their weighted taus above 0; otherwise they
are "indistinguishable here".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

PERMUTATIONS = 2000
"""Random orders drawn for a p-value (its resolution is 1/2001)."""
BOOTSTRAP = 1000
"""Resamples of the candidates for the difference of two orders' weighted taus."""


@dataclass(frozen=True)
class Agreement:
    """Rank agreement of one ordering with the truth over ``n`` candidates, with its noise."""

    order: str
    n: int
    kendall: float | None
    weighted: float | None
    p_value: float | None = None      # permutation p-value of Kendall's tau (one-sided: agreement)
    weighted_p: float | None = None   # the same for weighted tau
    null95: float | None = None       # 95th percentile of weighted tau under random orders
    regret: float | None = None       # truth of the best minus truth of the order's first pick (>= 0)

    def text(self) -> str:
        if self.kendall is None:
            return f"over {self.n} candidates: n/a (needs 3 or more with scores)"
        return (f"over {self.n} candidates: Kendall tau {_fmt(self.kendall)} ({_p(self.p_value)}), weighted tau "
                f"{_fmt(self.weighted)} ({_p(self.weighted_p)}; random orders reach {_fmt(self.null95)} one time in 20)"
                + (f", first-pick regret {self.regret:.4f}" if self.regret is not None else ""))


@dataclass(frozen=True)
class Difference:
    """Weighted tau of one order minus another's on the same candidates, with a bootstrap 95% interval."""

    diff: float
    low: float
    high: float
    n: int

    @property
    def beyond_noise(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class RankCheck:
    """A prescreen's agreement, each baseline's on the candidates it covers, and the verdicts."""

    prescreen: Agreement
    baselines: list[tuple[Agreement, Agreement]] = field(default_factory=list)  # (baseline, prescreen on its set)
    differences: list[Difference | None] = field(default_factory=list)  # baseline minus prescreen, per baseline
    cut_from: int | None = None  # with --top-k: how many candidates the prescreen ranked before keeping the survivors

    @property
    def beaten_by(self) -> list[str]:
        """Baselines whose weighted tau is above the prescreen's on the same candidates beyond the noise."""
        return [b.order for (b, _), d in zip(self.baselines, self._diffs(), strict=True)
                if d is not None and d.beyond_noise and d.diff > 0]

    @property
    def tied_with(self) -> list[str]:
        """Baselines the prescreen could not be told from on these candidates."""
        return [b.order for (b, _), d in zip(self.baselines, self._diffs(), strict=True)
                if d is not None and not d.beyond_noise]

    def _diffs(self) -> list[Difference | None]:
        return self.differences or [None] * len(self.baselines)

    def as_dict(self) -> dict[str, Any]:
        return {"prescreen": asdict(self.prescreen),
                "baselines": [{**asdict(b), "prescreen_weighted": p.weighted, "prescreen_kendall": p.kendall,
                               "difference": asdict(d) if d else None}
                              for (b, p), d in zip(self.baselines, self._diffs(), strict=True)],
                "beaten_by": self.beaten_by, "indistinguishable_from": self.tied_with,
                "covers": "top-k survivors" if self.cut_from is not None else "all candidates",
                "prescreened": self.cut_from}

    def lines(self) -> list[str]:
        """What select prints under its table."""
        p = self.prescreen
        out = [f"prescreen {p.order} vs fine-tuned order (validation) {p.text()}"]
        if self.cut_from is not None:
            out.append(f"  these taus cover only the {p.n} --top-k survivors of {self.cut_from} candidates "
                       "prescreened: the ones cut were never fine-tuned, so nothing here says whether cutting them "
                       "was right")
        for (b, on), d in zip(self.baselines, self._diffs(), strict=True):
            out.append(f"  free baseline '{b.order}' {b.text()}; prescreen on the same {on.n}: weighted tau "
                       f"{_fmt(on.weighted)}"
                       + (f"; baseline minus prescreen {d.diff:+.2f} [{d.low:+.2f}, {d.high:+.2f}]" if d else ""))
        if self.beaten_by:
            out.append(f"  the prescreen did not beat {' or '.join(self.beaten_by)} here, beyond the noise: its "
                       "ranking is not worth its cost on this task")
        if self.tied_with:
            out.append(f"  the prescreen and {' / '.join(self.tied_with)} are indistinguishable here "
                       f"({p.n} candidates are too few to tell them apart)")
        return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _p(value: float | None) -> str:
    if value is None:
        return "p n/a"
    floor = 1 / (PERMUTATIONS + 1)
    return f"p<{floor:.4f}" if value <= floor else f"p={value:.3f}"


def _common(predicted: Mapping[str, float], truth: Mapping[str, float]) -> list[str]:
    return [k for k in predicted if k in truth and math.isfinite(predicted[k]) and math.isfinite(truth[k])]


def _kendall_many(rows: np.ndarray, b: np.ndarray) -> list[float]:
    """Kendall's tau-b of each row of ``rows`` against ``b`` at once (the permutation null's cost)."""
    i, j = np.triu_indices(len(b), 1)
    sb = np.sign(b[i] - b[j])
    sa = np.sign(rows[:, i] - rows[:, j])
    n0 = len(i)
    ties_a, ties_b = int((np.sign(rows[0, i] - rows[0, j]) == 0).sum()), int((sb == 0).sum())
    denominator = math.sqrt((n0 - ties_a) * (n0 - ties_b))
    if not denominator:
        return [-1.0] * len(rows)
    return list((sa * sb).sum(1) / denominator)


def _taus_weighted(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import weightedtau

    return _finite(weightedtau(a, b).statistic, None)


def _taus(a: np.ndarray, b: np.ndarray, digits: int | None = 4) -> tuple[float | None, float | None]:
    from scipy.stats import kendalltau, weightedtau

    return _finite(kendalltau(a, b).statistic, digits), _finite(weightedtau(a, b).statistic, digits)


def agreement(order: str, predicted: Mapping[str, float], truth: Mapping[str, float], *,
              seed: int = 0) -> Agreement:
    """Kendall and weighted tau of ``predicted`` against ``truth`` (both higher-is-better) on their
    common finite keys, with permutation p-values, the null's 95th percentile and the first-pick
    regret; None values with fewer than 3 candidates or no variation."""
    keys = _common(predicted, truth)
    if len(keys) < 3:
        return Agreement(order, len(keys), None, None)
    a = np.array([predicted[k] for k in keys], dtype=float)
    b = np.array([truth[k] for k in keys], dtype=float)
    kendall, weighted = _taus(a, b, digits=None)
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(a) for _ in range(PERMUTATIONS)])
    null_k = _kendall_many(perms, b)
    null_w = []
    for row in perms:
        w = _taus_weighted(row, b)
        null_w.append(-1.0 if w is None else w)
    regret = float(b.max() - b[int(np.argmax(a))])

    def p_of(value: float | None, null: list[float]) -> float | None:
        if value is None:
            return None
        return round(float((1 + sum(x >= value - 1e-9 for x in null)) / (PERMUTATIONS + 1)), 4)

    return Agreement(order, len(keys), _finite(kendall), _finite(weighted), p_of(kendall, null_k),
                     p_of(weighted, null_w),
                     round(float(np.quantile(null_w, 0.95)), 4), round(regret, 4))


def difference(first: Mapping[str, float], second: Mapping[str, float], truth: Mapping[str, float], *,
               seed: int = 0) -> Difference | None:
    """Weighted tau of ``first`` minus ``second`` on the candidates all three cover, with a 95% interval
    from resampling the candidates (None with fewer than 3)."""
    keys = [k for k in _common(first, truth) if k in second and math.isfinite(second[k])]
    if len(keys) < 3:
        return None
    a, b, t = (np.array([m[k] for k in keys], dtype=float) for m in (first, second, truth))
    observed = (_taus(a, t)[1] or 0.0) - (_taus(b, t)[1] or 0.0)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, len(keys), len(keys))
        wa, wb = _taus(a[idx], t[idx])[1], _taus(b[idx], t[idx])[1]
        if wa is not None and wb is not None:
            draws.append(wa - wb)
    if not draws:
        return None
    low, high = np.quantile(draws, [0.025, 0.975])
    return Difference(round(observed, 4), round(float(low), 4), round(float(high), 4), len(keys))


def _finite(value: Any, digits: int | None = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value) if digits is None else round(float(value), digits)


def rank_check(method: str, scores: Mapping[str, float], truth: Mapping[str, float],
               baselines: Mapping[str, Mapping[str, float]], cut_from: int | None = None) -> RankCheck:
    """The prescreen's agreement with ``truth`` and each baseline's, compared on the same candidates;
    ``cut_from``: the number of candidates prescreened when only the top-k survivors were fine-tuned."""
    pairs, diffs = [], []
    for name, values in baselines.items():
        base = agreement(name, values, truth)
        same = {k: v for k, v in scores.items() if k in values}
        pairs.append((base, agreement(method, same, truth)))
        diffs.append(difference(values, scores, truth))
    return RankCheck(agreement(method, scores, truth), pairs, diffs, cut_from)
