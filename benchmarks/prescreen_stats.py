"""The prescreen benchmark's statistics: per target through :func:`harness.select.rankcheck.agreement`,
pooled over targets here, each with its noise (see ``benchmarks/prescreen.py``).

Pooling averages each order's Kendall tau, weighted tau and first-pick regret over the targets.
Its p-value permutes every target's candidates independently (the null: the order knows nothing
on any target) and counts how often the mean weighted tau reaches the observed one. A difference
between two orders (a prescreen minus the best free baseline) gets a 95% interval from resampling
the candidates within every target and averaging the per-target differences.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import kendalltau, weightedtau

DRAWS = 2000
"""Joint permutations for a pooled p-value, and resamples for a pooled difference's interval."""


@dataclass(frozen=True)
class Ranking:
    """One order's scores and the truth on one target, on the candidates both cover."""

    target: str
    predicted: np.ndarray
    truth: np.ndarray

    @classmethod
    def of(cls, target: str, predicted: Mapping[str, float], truth: Mapping[str, float]) -> Ranking:
        keys = [k for k in predicted if k in truth and math.isfinite(predicted[k]) and math.isfinite(truth[k])]
        return cls(target, np.array([predicted[k] for k in keys], float), np.array([truth[k] for k in keys], float))

    @property
    def n(self) -> int:
        return len(self.truth)


@dataclass(frozen=True)
class Pooled:
    """One order's agreement averaged over targets, with a joint-permutation p-value."""

    order: str
    targets: int
    candidates: int  # summed over the targets
    kendall: float | None
    weighted: float | None
    weighted_p: float | None
    regret: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PooledDifference:
    """Mean over targets of (weighted tau of one order minus another's), with a 95% interval."""

    first: str
    second: str
    diff: float
    low: float
    high: float

    @property
    def beyond_noise(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "beyond_noise": self.beyond_noise}


def _weighted(a: np.ndarray, b: np.ndarray) -> float:
    value = weightedtau(a, b).statistic
    return float(value) if math.isfinite(value) else 0.0  # a constant order carries no information


def _usable(rankings: Sequence[Ranking]) -> list[Ranking]:
    return [r for r in rankings if r.n >= 3]


def pooled(order: str, rankings: Sequence[Ranking], *, seed: int = 0, draws: int = DRAWS) -> Pooled:
    """``order``'s mean Kendall tau, weighted tau and regret over the targets with 3+ candidates,
    and the share of joint random permutations whose mean weighted tau reaches the observed one."""
    used = _usable(rankings)
    if not used:
        return Pooled(order, 0, 0, None, None, None, None)
    kendall = float(np.mean([np.nan_to_num(kendalltau(r.predicted, r.truth).statistic) for r in used]))
    weighted = float(np.mean([_weighted(r.predicted, r.truth) for r in used]))
    regret = float(np.mean([r.truth.max() - r.truth[int(np.argmax(r.predicted))] for r in used]))
    rng = np.random.default_rng(seed)
    null = [np.mean([_weighted(rng.permutation(r.predicted), r.truth) for r in used]) for _ in range(draws)]
    p = (1 + sum(x >= weighted - 1e-9 for x in null)) / (draws + 1)
    return Pooled(order, len(used), sum(r.n for r in used), round(kendall, 4), round(weighted, 4), round(p, 4),
                  round(regret, 4))


def pooled_difference(first: str, a: Sequence[Ranking], second: str, b: Sequence[Ranking], *, seed: int = 0,
                      draws: int = DRAWS) -> PooledDifference | None:
    """Mean over targets of weighted tau(a) - weighted tau(b), on each target's candidates common to
    both (matched by target; ``a[i]`` and ``b[i]`` must rank the same candidates in the same order
    of keys), with a 95% interval from resampling candidates within every target."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x.n >= 3 and x.n == y.n]
    if not pairs:
        return None
    observed = float(np.mean([_weighted(x.predicted, x.truth) - _weighted(y.predicted, y.truth) for x, y in pairs]))
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(draws):
        diffs = []
        for x, y in pairs:
            idx = rng.integers(0, x.n, x.n)
            diffs.append(_weighted(x.predicted[idx], x.truth[idx]) - _weighted(y.predicted[idx], y.truth[idx]))
        found.append(np.mean(diffs))
    low, high = np.quantile(found, [0.025, 0.975])
    return PooledDifference(first, second, round(observed, 4), round(float(low), 4), round(float(high), 4))


def on_common(target: str, orders: Mapping[str, Mapping[str, float]], truth: Mapping[str, float]
              ) -> dict[str, Ranking]:
    """Each order restricted to the candidates every one of ``orders`` and the truth cover, in the
    same key order, so that two orders' rankings compare candidate for candidate."""
    keys = [k for k in truth if math.isfinite(truth[k])
            and all(k in o and math.isfinite(o[k]) for o in orders.values())]
    return {name: Ranking(target, np.array([o[k] for k in keys], float), np.array([truth[k] for k in keys], float))
            for name, o in orders.items()}


def seed_stability(per_seed: Sequence[Mapping[str, float]]) -> float | None:
    """Mean Kendall tau between the candidates' orders on every pair of seeds: how well one seed's
    truth predicts another's (1: the truth order is the same whatever the seed)."""
    taus = []
    for i in range(len(per_seed)):
        for j in range(i + 1, len(per_seed)):
            keys = [k for k in per_seed[i] if k in per_seed[j]]
            if len(keys) >= 3:
                value = kendalltau([per_seed[i][k] for k in keys], [per_seed[j][k] for k in keys]).statistic
                if math.isfinite(value):
                    taus.append(value)
    return round(float(np.mean(taus)), 4) if taus else None
