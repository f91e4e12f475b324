"""The selection rules, as pure functions over leaderboard rows: nothing here trains or reads.

- a row's primary value is the mean over seeds, with a 95% t-interval;
- the Pareto front is quality against ONNX Runtime batch-1 latency;
- a row is eligible when its ONNX export passed parity and it meets every constraint;
- the winner is the eligible row with the best primary value (NaN never wins);
- Kendall's tau says how well a prescreen's order predicted the fine-tuned order.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

from harness.select.config import Constraints
from harness.select.row import LeaderboardRow


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
    """Rows with ``pareto`` set for those with a finite primary value and a latency."""
    sign = 1 if higher_is_better else -1
    ranked = [i for i, r in enumerate(rows) if _finite(r.primary_value) and r.ort_b1_ms is not None]
    flags = pareto_flags([(sign * rows[i].primary_value, rows[i].ort_b1_ms) for i in ranked])  # type: ignore[operator,misc]
    on_front = {i for i, flag in zip(ranked, flags, strict=True) if flag}
    return [dataclasses.replace(r, pareto=i in on_front) if i in ranked else r for i, r in enumerate(rows)]


def decide(rows: Sequence[LeaderboardRow], higher_is_better: bool,
           constraints: Constraints) -> tuple[list[LeaderboardRow], LeaderboardRow | None]:
    """Mark the Pareto front, the excluded rows (with reasons) and the chosen one; returns both."""
    marked = mark_pareto(rows, higher_is_better)
    result, eligible = [], []
    for row in marked:
        if row.status not in ("ok", "cached") or not _finite(row.primary_value):
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
    winner = max(eligible, key=lambda r: sign * r.primary_value)  # type: ignore[operator]
    chosen = dataclasses.replace(winner, chosen=True)
    return [chosen if r is winner else r for r in result], chosen


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
