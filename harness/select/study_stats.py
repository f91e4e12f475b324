"""What ``harness study transfer``'s runs say: paired gains with intervals, recipes chosen on
validation, one verdict per label budget, and quality-vs-gain correlations between comparable starts.

Pure functions over :class:`StudyRun` records (no torch, no store), so tests can feed them
constructed figures. Two arms are compared:

- **equal steps** (``equal``): every start trained with the budget's recipe for the same epochs
  (pretrained backbones at 0.1x the head's learning rate, scratch at 1x), as before;
- **converged** (``converged``): every start trained until validation stops improving, with each
  recipe of a small grid (backbone learning-rate multiplier x strategy); per seed the recipe with the
  best *validation* score is kept, and its *test* score is reported.

A gain is paired: a start and its scratch baseline share the training subset and the seed, so the
study takes the per-seed differences and gives their mean with a 95% Student t interval over seeds
(:func:`harness.evaluate.paired.paired_t`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.evaluate.paired import PairedDiff, paired_t

EQUAL, CONVERGED = "equal", "converged"
CHOSEN = "chosen"
"""The converged row whose recipe (strategy and multiplier) is chosen on validation, per seed."""

QUALITY = {"supervised": "val accuracy", "contrastive": "val positive-pair accuracy",
           "autoencoder": "minus val reconstruction MSE"}
"""What 'pretraining quality' means per method (each higher is better)."""


@dataclass(frozen=True)
class StudyRun:
    """One fine-tune of the study: which start, arm, recipe, budget and seed, and what it scored."""

    start: str
    arm: str  # EQUAL or CONVERGED
    strategy: str
    lr_mult: float | None  # backbone learning-rate multiplier; None: the default (0.1 pretrained, 1 scratch)
    labels: int | None  # training labels per class; None: all
    seed: int
    model: str = ""
    val: float | None = None  # primary metric on validation (what choices use)
    value: float | None = None  # primary metric on test (what is reported)
    epochs: int | None = None  # epochs trained: fewer than max_epochs when early stopping ended the run
    best_epoch: int | None = None
    max_epochs: int | None = None
    patience: int | None = None
    cached: bool = False

    @property
    def recipe(self) -> str:
        """``full x0.1``, ``linear``: the strategy and, where it matters, the backbone multiplier."""
        if self.strategy == "linear" or self.lr_mult is None:
            return self.strategy
        return f"{self.strategy} x{self.lr_mult:g}"

    @property
    def stopped_early(self) -> bool:
        return self.epochs is not None and self.max_epochs is not None and self.epochs < self.max_epochs


@dataclass(frozen=True)
class StartInfo:
    """What the statistics need to know of a start: its architecture, whether it is pretrained, and
    (for a zoo or pretrain version) the pretraining source, method and quality."""

    backbone: str
    pretrained: bool
    source: str | None = None
    method: str | None = None
    quality: float | None = None


@dataclass(frozen=True)
class Gain:
    """A start's paired gain over its baseline, one difference per seed (positive: the start is better)."""

    diffs: tuple[float, ...]
    stat: PairedDiff | None  # mean and 95% t interval over seeds; None with one seed

    @classmethod
    def of(cls, diffs: Sequence[float], metric: str = "accuracy") -> Gain:
        values = tuple(round(float(d), 6) for d in diffs)
        return cls(values, paired_t(values, metric) if len(values) >= 2 else None)

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def mean(self) -> float:
        return sum(self.diffs) / len(self.diffs)

    @property
    def word(self) -> str:
        """``helps`` (interval above 0), ``hurts`` (below 0), ``no difference``, or ``one seed``."""
        if self.stat is None:
            return "one seed"
        if self.stat.low > 0:
            return "helps"
        if self.stat.high < 0:
            return "hurts"
        return "no difference"

    def text(self) -> str:
        """``+0.170 [+0.050, +0.290]``, or ``+0.170 (1 seed)`` without an interval."""
        if self.stat is None:
            return f"{self.mean:+.3f} (1 seed)"
        return f"{self.stat.diff:+.3f} [{self.stat.low:+.3f}, {self.stat.high:+.3f}]"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mean": round(self.mean, 4), "low": None, "high": None, "p_value": None,
                               "n_seeds": self.n, "method": None, "per_seed": list(self.diffs), "verdict": self.word}
        if self.stat is not None:
            out.update(low=round(self.stat.low, 4), high=round(self.stat.high, 4), p_value=self.stat.p_value,
                       method=self.stat.method)
        return out


def paired_gain(runs: dict[int, StudyRun], base: dict[int, StudyRun] | None, higher_is_better: bool,
                metric: str = "accuracy") -> Gain | None:
    """The gain of ``runs`` over ``base`` on the seeds both have a test score for (seed by seed)."""
    if not base:
        return None
    sign = 1.0 if higher_is_better else -1.0
    diffs = []
    for seed, run in sorted(runs.items()):
        other = base[seed].value if seed in base else None
        if run.value is not None and other is not None:
            diffs.append(sign * (run.value - other))
    return Gain.of(diffs, metric) if diffs else None


def choose(runs: Iterable[StudyRun], higher_is_better: bool) -> StudyRun | None:
    """The run with the best *validation* score (test is never looked at); the first on a tie."""
    best: StudyRun | None = None
    for run in runs:
        if run.val is None or not math.isfinite(run.val):
            continue
        if best is None or (run.val > best.val if higher_is_better else run.val < best.val):  # type: ignore[operator]
            best = run
    return best


Picks = dict[tuple[str, str, str, int | None], dict[int, StudyRun]]
"""(arm, start, strategy or CHOSEN, labels) -> {seed: the run behind that row's value}."""


def picks(runs: Sequence[StudyRun], info: dict[str, StartInfo], higher_is_better: bool) -> Picks:
    """Each row's run per seed: equal-step runs as they are; for the converged arm, per strategy the
    multiplier chosen on validation, and (``chosen``) the best recipe of all on validation."""
    out: Picks = defaultdict(dict)
    grids: dict[tuple[str, int | None, int], list[StudyRun]] = defaultdict(list)
    for run in runs:
        if run.arm == EQUAL:
            out[(EQUAL, run.start, run.strategy, run.labels)][run.seed] = run
        else:
            grids[(run.start, run.labels, run.seed)].append(run)
    for (start, labels, seed), grid in grids.items():
        keys = [CHOSEN] + (sorted({r.strategy for r in grid}) if info[start].pretrained else [])
        for key in keys:
            best = choose((r for r in grid if key in (CHOSEN, r.strategy)), higher_is_better)
            if best is not None:
                out[(CONVERGED, start, key, labels)][seed] = best
    return out


def scratch_of(info: dict[str, StartInfo], backbone: str) -> str | None:
    """The scratch start of ``backbone`` in the study, if any."""
    return next((s for s, i in info.items() if not i.pretrained and i.backbone == backbone), None)


@dataclass(frozen=True)
class Row:
    """One line of the study's table: a start's scores over seeds in one arm, strategy and budget."""

    arm: str
    start: str
    strategy: str
    labels: int | None
    runs: tuple[StudyRun, ...]  # one per seed, in seed order
    gain: Gain | None  # over scratch of the same backbone (equal: scratch full; converged: scratch chosen)
    baseline: str | None

    def as_dict(self) -> dict[str, Any]:
        from harness.select.choose import mean_ci

        values = [r.value for r in self.runs if r.value is not None]
        mean, half = mean_ci(values) if values else (math.nan, math.nan)
        out: dict[str, Any] = {"arm": self.arm, "start": self.start, "strategy": self.strategy,
                               "labels_per_class": self.labels or "all", "seeds": len(values),
                               "mean": round(mean, 4), "ci95": round(half, 4), "baseline": self.baseline,
                               "gain": self.gain.as_dict() if self.gain else None}
        if self.arm == CONVERGED:
            out["recipes"] = dict(Counter(r.recipe for r in self.runs))
            out["epochs"] = [r.epochs for r in self.runs]
            out["best_epochs"] = [r.best_epoch for r in self.runs]
            out["max_epochs"] = [r.max_epochs for r in self.runs]
        return out


def summarise(runs: Sequence[StudyRun], info: dict[str, StartInfo], higher_is_better: bool,
              metric: str = "accuracy") -> list[Row]:
    """Every row with its paired gain over scratch of the same backbone, ordered by budget, arm,
    strategy and mean."""
    chosen = picks(runs, info, higher_is_better)
    rows = []
    for (arm, start, strategy, labels), by_seed in chosen.items():
        scratch = scratch_of(info, info[start].backbone) if info[start].pretrained else None
        base_key = (arm, scratch or "", "full" if arm == EQUAL else CHOSEN, labels)
        gain = paired_gain(by_seed, chosen.get(base_key), higher_is_better, metric) if scratch else None
        rows.append(Row(arm, start, strategy, labels, tuple(by_seed[s] for s in sorted(by_seed)), gain, scratch))
    order = {lab: i for i, lab in enumerate(dict.fromkeys(r.labels for r in runs))}
    sign = -1 if higher_is_better else 1

    def key(row: Row) -> tuple[Any, ...]:
        values = [r.value for r in row.runs if r.value is not None]
        return (order[row.labels], row.arm != EQUAL, row.strategy, sign * (sum(values) / max(len(values), 1)))

    return sorted(rows, key=key)


@dataclass(frozen=True)
class Verdict:
    """Per label budget: the pretrained start picked on validation against scratch picked the same way."""

    labels: int | None
    converged: Gain | None
    equal: Gain | None
    picked: tuple[str, ...]  # per seed, the pretrained start behind the headline gain
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"labels_per_class": self.labels or "all", "text": self.text,
                "converged": self.converged.as_dict() if self.converged else None,
                "equal_steps": self.equal.as_dict() if self.equal else None,
                "picked": dict(Counter(self.picked))}


def verdict_text(labels: int | None, gain: Gain, detail: str) -> str:
    """One line: ``pretraining helps at 10 labels/class: +0.170 [+0.050, +0.290] (n=3 seeds; ...)``;
    ``no difference at ...``; ``pretraining hurts here at ...`` when the interval is below 0."""
    at = f"{labels} labels/class" if labels else "all labels"
    n = f"n={gain.n} seed{'' if gain.n == 1 else 's'}"
    if gain.word == "one seed":
        return f"{at}: {gain.text()} ({n}): too few seeds for an interval; use --seeds 3 or more"
    lead = {"helps": f"pretraining helps at {at}", "hurts": f"pretraining hurts here at {at}",
            "no difference": f"no difference at {at}"}[gain.word]
    return f"{lead}: {gain.text()} ({n}; {detail})"


def _picked_pairs(chosen: Picks, arm: str, labels: int | None, info: dict[str, StartInfo],
                  higher_is_better: bool) -> tuple[dict[int, StudyRun], dict[int, StudyRun]]:
    """Per seed, the pretrained row picked on validation among starts whose backbone has a scratch
    start, and that scratch start's row of the same arm: the pair differs only by pretraining."""
    pool: dict[int, list[StudyRun]] = defaultdict(list)
    for (a, start, strategy, lab), by_seed in chosen.items():
        if a == arm and lab == labels and info[start].pretrained and scratch_of(info, info[start].backbone) \
                and (arm == EQUAL or strategy == CHOSEN):
            for seed, run in by_seed.items():
                pool[seed].append(run)
    ours, base = {}, {}
    for seed, runs in sorted(pool.items()):
        best = choose(runs, higher_is_better)
        scratch = scratch_of(info, info[best.start].backbone) if best else None
        other = chosen.get((arm, scratch or "", "full" if arm == EQUAL else CHOSEN, labels), {}).get(seed)
        if best is not None and other is not None:
            ours[seed], base[seed] = best, other
    return ours, base


def verdicts(runs: Sequence[StudyRun], info: dict[str, StartInfo], higher_is_better: bool,
             metric: str = "accuracy") -> list[Verdict]:
    """One verdict per label budget: per seed, the pretrained start (and recipe) with the best
    validation score against scratch of the same backbone, so the pair differs only by pretraining;
    converged when the study has that arm, else at equal steps. Starts whose backbone has no scratch
    start in the study take no part."""
    eligible = {s for s, i in info.items() if i.pretrained and scratch_of(info, i.backbone)}
    if not eligible:
        return []
    chosen = picks(runs, info, higher_is_better)
    out = []
    for labels in dict.fromkeys(r.labels for r in runs):
        gains = {}
        for arm in (CONVERGED, EQUAL):
            ours, base = _picked_pairs(chosen, arm, labels, info, higher_is_better)
            gains[arm] = (paired_gain(ours, base, higher_is_better, metric), ours)
        (conv, conv_picks), (equal, equal_picks) = gains[CONVERGED], gains[EQUAL]
        headline, where = (conv, conv_picks) if conv else (equal, equal_picks)
        if headline is None:
            continue
        if conv:
            detail = (f"t over seeds; best of {len(eligible)} pretrained start(s) on validation vs scratch of its "
                      f"backbone, both trained to convergence" + (f"; at equal steps {equal.text()}" if equal else ""))
        else:
            detail = "t over seeds; at equal steps only: scratch may be undertrained (the study ran --no-converge)"
        picked = tuple(where[s].start for s in sorted(where))
        out.append(Verdict(labels, conv, equal, picked, verdict_text(labels, headline, detail)))
    return out


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho between pretraining quality and gain, among starts of one source and method."""

    arm: str
    labels: int | None
    strategy: str
    source: str
    method: str
    n: int
    spearman: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = self.labels or "all"
        out["quality"] = QUALITY.get(self.method, "pretraining score")
        out["interval"] = "Fisher z, var 1.06/(n-3)" if self.low is not None else None
        return out


def spearman_interval(rho: float, n: int) -> tuple[float, float] | None:
    """95% interval of Spearman's rho by Fisher's z with Fieller et al.'s (1957) variance
    1.06/(n-3); None below 4 pairs, where it is undefined."""
    if n < 4:
        return None
    z = math.atanh(max(-0.9999, min(0.9999, rho)))
    se = math.sqrt(1.06 / (n - 3))
    return math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se)


def correlate(rows: Sequence[Row], info: dict[str, StartInfo]) -> tuple[list[Correlation], int]:
    """Per (arm, budget, strategy) and per (source, method): rho between quality and gain, with n;
    only groups of at least 3 starts with a spread are computed. Returns (rows, groups too small)."""
    from scipy.stats import spearmanr

    groups: dict[tuple[str, int | None, str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        i = info[row.start]
        if row.gain is not None and i.quality is not None and i.source and i.method:
            groups[(row.arm, row.labels, row.strategy, i.source, i.method)].append((i.quality, row.gain.mean))
    out, small = [], 0
    for (arm, labels, strategy, source, method), points in groups.items():
        qualities, gains = [p[0] for p in points], [p[1] for p in points]
        if len(points) < 3 or len(set(qualities)) < 2 or len(set(gains)) < 2:
            small += 1
            continue
        rho = float(spearmanr(qualities, gains).statistic)
        ci = spearman_interval(rho, len(points))
        out.append(Correlation(arm, labels, strategy, source, method, len(points), round(rho, 3),
                               round(ci[0], 3) if ci else None, round(ci[1], 3) if ci else None))
    return out, small
