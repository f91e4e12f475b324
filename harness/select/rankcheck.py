"""How well did a prescreen's order predict the fine-tuned order, and did it beat free rankings?

A prescreen costs feature extraction on every candidate; it earns that only when its order agrees
with the fine-tuned order better than orders that cost nothing: ranking by parameter count (bigger
first) and by pretraining score (the source model's validation accuracy; a model trained from
scratch counts as 0). Agreement is Kendall's tau and, as the transferability literature reports it,
weighted tau (:func:`scipy.stats.weightedtau`, which weighs the top of the order most: choosing the
best candidates matters more than ordering the worst).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Agreement:
    """Rank agreement of one ordering with the fine-tuned truth over ``n`` candidates."""

    order: str
    n: int
    kendall: float | None
    weighted: float | None


@dataclass(frozen=True)
class RankCheck:
    """A prescreen's agreement, each baseline's on the candidates it covers, and the verdict."""

    prescreen: Agreement
    baselines: list[tuple[Agreement, Agreement]] = field(default_factory=list)  # (baseline, prescreen on its set)

    @property
    def beaten_by(self) -> list[str]:
        """Baselines whose weighted tau is at least the prescreen's on the same candidates."""
        return [b.order for b, p in self.baselines
                if b.weighted is not None and (p.weighted is None or b.weighted >= p.weighted)]

    def as_dict(self) -> dict[str, Any]:
        return {"prescreen": asdict(self.prescreen),
                "baselines": [{**asdict(b), "prescreen_weighted": p.weighted, "prescreen_kendall": p.kendall}
                              for b, p in self.baselines],
                "beaten_by": self.beaten_by}

    def lines(self) -> list[str]:
        """What select prints under its table."""
        p = self.prescreen
        out = [f"prescreen {p.order} vs fine-tuned order over {p.n} candidates: "
               f"Kendall tau {_fmt(p.kendall)}, weighted tau {_fmt(p.weighted)}"]
        for b, on in self.baselines:
            out.append(f"  free baseline '{b.order}' over {b.n}: Kendall tau {_fmt(b.kendall)}, weighted tau "
                       f"{_fmt(b.weighted)} (prescreen on the same {on.n}: {_fmt(on.weighted)})")
        if self.beaten_by:
            out.append(f"  the prescreen did not beat {' or '.join(self.beaten_by)} here: its ranking is not "
                       "worth its cost on this task")
        return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def agreement(order: str, predicted: Mapping[str, float], truth: Mapping[str, float]) -> Agreement:
    """Kendall and weighted tau of ``predicted`` against ``truth`` (both higher-is-better) on their
    common finite keys; None with fewer than 3 candidates or no variation."""
    keys = [k for k in predicted if k in truth and math.isfinite(predicted[k]) and math.isfinite(truth[k])]
    if len(keys) < 3:
        return Agreement(order, len(keys), None, None)
    from scipy.stats import kendalltau, weightedtau

    a, b = [predicted[k] for k in keys], [truth[k] for k in keys]
    return Agreement(order, len(keys), _finite(kendalltau(a, b).statistic), _finite(weightedtau(a, b).statistic))


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def rank_check(method: str, scores: Mapping[str, float], truth: Mapping[str, float],
               baselines: Mapping[str, Mapping[str, float]]) -> RankCheck:
    """The prescreen's agreement with ``truth`` and each baseline's, compared on the same candidates."""
    pairs = []
    for name, values in baselines.items():
        base = agreement(name, values, truth)
        same = {k: v for k, v in scores.items() if k in values}
        pairs.append((base, agreement(method, same, truth)))
    return RankCheck(agreement(method, scores, truth), pairs)
