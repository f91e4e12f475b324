"""Paired comparisons between leaderboard rows, from the per-image predictions in the store.

:func:`row_comparer` gives ``decide`` its ``compare(row, best)``: both rows' versions are read once,
their seeds paired by seed number, and a seed counts only when both models were scored on the same
image set (equal :class:`~harness.predictions.stored.EvalSet` digests); rows that share no such
seed (older versions without predictions, other limits) are not compared, and say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from harness.evaluate.metrics import metric_scorer
from harness.evaluate.paired import PairedDiff, SeedPair, paired_bootstrap
from harness.predictions.stored import SplitPredictions, load_predictions
from harness.select.row import LeaderboardRow

if TYPE_CHECKING:
    from harness.context import Context
    from registry import Metric


class RowPredictions:
    """Predictions of rows' versions, read from the store once per version."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._cache: dict[str, tuple[int | None, dict[str, SplitPredictions]]] = {}

    def of(self, ref: str) -> tuple[int | None, dict[str, SplitPredictions]]:
        """(seed, {"val"|"test": predictions}) of the version ``ref``."""
        if ref not in self._cache:
            version = self._ctx.store.get(ref)
            self._cache[ref] = (version.seed, load_predictions(version))
        return self._cache[ref]

    def pairs(self, a: LeaderboardRow, b: LeaderboardRow, split: str) -> list[SeedPair]:
        """One :class:`SeedPair` per seed that both rows have, scored on the same ``split`` images."""
        theirs = {seed: preds[split] for seed, preds in map(self.of, b.refs) if split in preds}
        out = []
        for seed, preds in map(self.of, a.refs):
            mine, other = preds.get(split), theirs.get(seed)
            if mine is None or other is None or mine.evalset.digest != other.evalset.digest:
                continue
            if mine.logits.shape != other.logits.shape or not np.array_equal(mine.labels, other.labels):
                continue
            out.append(SeedPair(mine.labels, mine.logits, other.logits))
        return out


def with_test_diffs(ctx: Context, metric: Metric, rows: list[LeaderboardRow], chosen: LeaderboardRow,
                    predictions: RowPredictions) -> list[LeaderboardRow]:
    """``rows`` with each one's paired difference with ``chosen`` on test (for the report; never used to choose)."""
    import dataclasses

    on_test = row_comparer(ctx, metric, "test", predictions)
    return [dataclasses.replace(r, test_vs_chosen=on_test(r, chosen))
            if r.refs and r is not chosen and r.status in ("ok", "cached") else r for r in rows]


def row_comparer(ctx: Context, metric: Metric, split: str = "val",
                 predictions: RowPredictions | None = None) -> Callable[[LeaderboardRow, LeaderboardRow],
                                                                       PairedDiff | None]:
    """``compare(a, b)``: ``metric(a) - metric(b)`` on ``split``, paired over images and seeds (None
    when the two rows share no image set)."""
    store = predictions or RowPredictions(ctx)
    scorer = metric_scorer(metric)

    def compare(a: LeaderboardRow, b: LeaderboardRow) -> PairedDiff | None:
        pairs = store.pairs(a, b, split)
        if not pairs:
            return None
        return paired_bootstrap(pairs, metric.name, scorer)

    return compare
