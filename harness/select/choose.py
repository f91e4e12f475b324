"""The selection rules, as pure functions over leaderboard rows: nothing here trains or reads.

- every choice is made on **validation** (``row.val``); the test scores are reported, never used to pick;
- a row's primary value is the mean over seeds, with a 95% t-interval;
- the Pareto front is validation quality against ONNX Runtime batch-1 latency;
- a row is eligible when its ONNX export passed parity and it meets every constraint;
- the best row is the eligible one with the best validation score (NaN never wins); every eligible
  row is compared with it image by image (``compare``: a paired bootstrap on the validation images,
  see :mod:`harness.evaluate.paired`), and is *tied* with it when the 95% interval of the difference
  includes 0;
- among the best and the rows tied with it, ``prefer`` chooses: ``best`` (default) the best
  validation score, ``fastest`` the lowest ORT batch-1 latency, ``smallest`` the smallest ONNX file.
  The default stays ``best`` because a tie means "not shown to differ on these images", not "equal":
  the best point estimate is still the best single guess, and trading quality for speed is a
  deployment decision the user states (``--prefer fastest`` or ``--max-latency-ms``).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from harness.select.config import PREFER, Constraints
from harness.select.row import LeaderboardRow

if TYPE_CHECKING:  # numpy stays out of light commands
    from harness.evaluate.paired import PairedDiff

Compare = Callable[[LeaderboardRow, LeaderboardRow], "PairedDiff | None"]
"""``compare(row, best)``: ``row - best`` on the same validation images, or None when they cannot be paired."""


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of a 95% t confidence interval (0 for a single value)."""
    if len(values) < 2:
        return values[0], 0.0
    from scipy.stats import t

    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return statistics.fmean(values), float(half)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def pareto_flags(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (quality, latency) points with higher quality better: is each on the Pareto front?"""
    flags = []
    for i, (q, lat) in enumerate(points):
        dominated = any(oq >= q and olat <= lat and (oq > q or olat < lat)
                        for j, (oq, olat) in enumerate(points) if j != i)
        flags.append(not dominated)
    return flags


def exclusions(row: LeaderboardRow, constraints: Constraints) -> list[str]:
    """Why ``row`` may not be chosen (empty when it may)."""
    why = []
    if row.parity != "passed":
        why.append("ONNX parity failed" if row.parity else "no ONNX parity check")
    c = constraints
    if c.max_latency_ms is not None and (row.ort_b1_ms is None or row.ort_b1_ms > c.max_latency_ms):
        why.append(f"ORT latency {row.ort_b1_ms} ms > {c.max_latency_ms}")
    if c.max_params is not None and (row.params_m is None or row.params_m * 1e6 > c.max_params):
        why.append(f"{row.params_m}M params > {c.max_params / 1e6:g}M")
    if c.max_size_mb is not None and (row.size_mb is None or row.size_mb > c.max_size_mb):
        why.append(f"{row.size_mb} MB > {c.max_size_mb} MB")
    return why


def mark_pareto(rows: Sequence[LeaderboardRow], higher_is_better: bool) -> list[LeaderboardRow]:
    """Rows with ``pareto`` set for those with a finite validation score and a latency."""
    sign = 1 if higher_is_better else -1
    ranked = [i for i, r in enumerate(rows) if _finite(r.val) and r.ort_b1_ms is not None]
    flags = pareto_flags([(sign * rows[i].val, rows[i].ort_b1_ms) for i in ranked])  # type: ignore[operator,misc]
    on_front = {i for i, flag in zip(ranked, flags, strict=True) if flag}
    return [dataclasses.replace(r, pareto=i in on_front) if i in ranked else r for i, r in enumerate(rows)]


def _prefer_key(row: LeaderboardRow, prefer: str, sign: int) -> tuple[float, float]:
    """Sort key (smallest first) of a tied row under ``prefer``; quality breaks ties of the others."""
    quality = -sign * (row.val if row.val is not None else -sign * math.inf)
    if prefer == "fastest":
        return (row.ort_b1_ms if row.ort_b1_ms is not None else math.inf, quality)
    if prefer == "smallest":
        size = row.size_mb if row.size_mb is not None else (row.params_m if row.params_m is not None else math.inf)
        return (size, quality)
    return (quality, 0.0)


def decide(rows: Sequence[LeaderboardRow], higher_is_better: bool, constraints: Constraints,
           prefer: str = "best", compare: Compare | None = None) -> tuple[list[LeaderboardRow], LeaderboardRow | None]:
    """Mark the Pareto front, the excluded rows (with reasons), each eligible row's paired difference
    with the best on validation and whether it is tied, and the chosen one; returns both."""
    if prefer not in PREFER:
        raise ValueError(f"prefer must be one of {', '.join(PREFER)}")
    marked = mark_pareto(rows, higher_is_better)
    result, eligible = [], []
    for row in marked:
        if row.status not in ("ok", "cached") or not _finite(row.val):
            result.append(row)
            continue
        why = exclusions(row, constraints)
        row = dataclasses.replace(row, excluded="; ".join(why) or None)
        result.append(row)
        if not why:
            eligible.append(row)
    if not eligible:
        return result, None
    sign = 1 if higher_is_better else -1
    best = max(eligible, key=lambda r: sign * r.val)  # type: ignore[operator]
    compared = {}
    for row in eligible:
        diff = compare(row, best) if compare is not None and row is not best else None
        # the best is in the tied set; a row that could not be paired with it is neither tied nor not (None)
        tied = True if row is best else (None if diff is None else not diff.significant)
        compared[id(row)] = dataclasses.replace(row, vs_best=diff, tied=tied,
                                                uncompared=compare is not None and row is not best and diff is None)
    pool = [compared[id(r)] for r in eligible if compared[id(r)].tied]
    winner = min(pool, key=lambda r: _prefer_key(r, prefer, sign))
    chosen = dataclasses.replace(winner, chosen=True)
    out = [compared.get(id(r), r) for r in result]
    return [chosen if r is winner else r for r in out], chosen


def top_by_validation(rows: Sequence[LeaderboardRow], k: int, higher_is_better: bool) -> list[LeaderboardRow]:
    """The ``k`` best rows on validation among those that could be chosen (eligible, not failed)."""
    sign = 1 if higher_is_better else -1
    ok = [r for r in rows if r.status in ("ok", "cached") and _finite(r.val) and not r.excluded]
    return sorted(ok, key=lambda r: -sign * r.val)[:k]  # type: ignore[operator]


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Rank agreement of two orders (None with fewer than 3 pairs or no variation)."""
    if len(a) < 3:
        return None
    from scipy.stats import kendalltau

    tau = kendalltau(a, b).statistic
    return None if tau is None or math.isnan(tau) else float(tau)


def sort_rows(rows: Sequence[LeaderboardRow], key: str, higher_first: bool) -> list[LeaderboardRow]:
    """Rows with a numeric ``key`` first, best first; the rest keep their order after them."""
    have = [r for r in rows if _finite(r.value(key))]
    rest = [r for r in rows if r not in have]
    return sorted(have, key=lambda r: r.value(key), reverse=higher_first) + rest
