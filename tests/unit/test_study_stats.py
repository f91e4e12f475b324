"""The study's statistics on constructed figures: the paired t interval, gains paired by seed, the
recipe chosen on validation (never test), the verdict wording, correlations only within one source
and method, and the convergence budget."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from harness.evaluate.paired import paired_t
from harness.select.study import Converge
from harness.select.study_stats import (
    CHOSEN,
    CONVERGED,
    EQUAL,
    Gain,
    StartInfo,
    StudyRun,
    choose,
    correlate,
    paired_gain,
    spearman_interval,
    summarise,
    verdict_text,
    verdicts,
)

INFO = {"scratch": StartInfo("net", False), "ae": StartInfo("net", True, "fmnist", "autoencoder", -0.02)}


def _run(start: str, seed: int, test: float, val: float | None = None, arm: str = CONVERGED,
         strategy: str = "full", mult: float | None = 1.0, labels: int | None = 10) -> StudyRun:
    return StudyRun(start, arm, strategy, mult, labels, seed, val=test if val is None else val, value=test,
                    epochs=20, max_epochs=40)


def test_paired_t_matches_scipy_and_widens_with_few_seeds():
    diffs = [0.12, 0.20, 0.31]
    ours = paired_t(diffs)
    ref = stats.ttest_1samp(diffs, 0.0)
    low, high = ref.confidence_interval(0.95)
    assert (ours.low, ours.high) == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-6) and ours.n_seeds == 3
    assert ours.high - ours.low > max(diffs) - min(diffs)  # wider than the range a 3-seed bootstrap gives
    flat = paired_t([0.1, 0.1])
    assert flat.low == flat.high == pytest.approx(0.1) and flat.p_value == 0.0
    with pytest.raises(ValueError):
        paired_t([0.1])


def test_gain_pairs_by_seed_and_follows_the_metric_direction():
    ours = {0: _run("ae", 0, 0.8), 1: _run("ae", 1, 0.7), 2: _run("ae", 2, 0.9)}
    base = {0: _run("scratch", 0, 0.6), 2: _run("scratch", 2, 0.5)}  # seed 1 missing: not paired
    gain = paired_gain(ours, base, higher_is_better=True)
    assert gain is not None and gain.diffs == (0.2, 0.4) and gain.n == 2
    lower = paired_gain(ours, base, higher_is_better=False)  # an error rate: lower is better
    assert lower is not None and lower.diffs == (-0.2, -0.4) and lower.mean == pytest.approx(-0.3)
    assert paired_gain(ours, {}, True) is None


def test_recipe_is_chosen_on_validation_not_test():
    grid = [_run("ae", 0, test=0.95, val=0.60, mult=1.0),  # best on test, worse on validation
            _run("ae", 0, test=0.80, val=0.70, mult=0.1),
            _run("ae", 0, test=0.90, val=0.65, strategy="linear")]
    assert choose(grid, True).recipe == "full x0.1"
    assert choose(grid, False).recipe == "full x1"  # lower is better: the lowest validation score
    rows = {(r.arm, r.start, r.strategy): r for r in summarise([*grid, _run("scratch", 0, 0.5)], INFO, True)}
    assert rows[(CONVERGED, "ae", CHOSEN)].runs[0].value == 0.80
    assert rows[(CONVERGED, "ae", "linear")].runs[0].value == 0.90
    assert rows[(CONVERGED, "ae", "full")].runs[0].recipe == "full x0.1"
    assert rows[(CONVERGED, "ae", CHOSEN)].gain.diffs == (pytest.approx(0.3),)
    assert (CONVERGED, "scratch", "full") not in rows  # scratch has one strategy: its chosen row says it all


@pytest.mark.parametrize("diffs,lead", [
    ((0.20, 0.25, 0.22), "pretraining helps at 10 labels/class: +0.223 ["),
    ((0.10, -0.08, 0.02), "no difference at 10 labels/class: +0.013 ["),
    ((-0.17, -0.16, -0.18), "pretraining hurts here at 10 labels/class: -0.170 ["),
])
def test_verdict_wording_from_constructed_figures(diffs, lead):
    runs = []
    for seed, d in enumerate(diffs):
        runs += [_run("scratch", seed, 0.6), _run("ae", seed, 0.6 + d),
                 _run("scratch", seed, 0.3, arm=EQUAL, mult=None), _run("ae", seed, 0.5, arm=EQUAL, mult=None)]
    (verdict,) = verdicts(runs, INFO, True)
    assert verdict.text.startswith(lead), verdict.text
    assert "n=3 seeds" in verdict.text and "at equal steps +0.200 [+0.200, +0.200]" in verdict.text
    assert verdict.converged.n == 3 and verdict.picked == ("ae", "ae", "ae")


def test_verdict_with_one_seed_says_there_is_no_interval_and_all_labels_reads_well():
    text = verdict_text(None, Gain.of([0.05]), "")
    assert text == "all labels: +0.050 (1 seed) (n=1 seed): too few seeds for an interval; use --seeds 3 or more"


def test_verdict_picks_the_pretrained_start_on_validation():
    info = {**INFO, "sup": StartInfo("net", True, "fmnist:0-4", "supervised", 0.9)}
    runs = []
    for seed in range(2):
        runs += [_run("scratch", seed, 0.60), _run("ae", seed, test=0.70, val=0.9),
                 _run("sup", seed, test=0.95, val=0.5)]  # best on test, but validation picks ae
    (verdict,) = verdicts(runs, info, True)
    assert verdict.picked == ("ae", "ae") and verdict.converged.mean == pytest.approx(0.10)


def test_verdict_pairs_each_pick_with_scratch_of_its_backbone_and_skips_backbones_without_one():
    info = {**INFO, "big": StartInfo("bignet", True, "fmnist", "autoencoder", -0.01)}
    runs = []
    for seed in range(2):
        runs += [_run("scratch", seed, 0.60), _run("ae", seed, test=0.70, val=0.8),
                 _run("big", seed, test=0.99, val=0.99)]  # best everywhere, but no scratch bignet to pair with
    (verdict,) = verdicts(runs, info, True)
    assert verdict.picked == ("ae", "ae") and verdict.converged.diffs == (pytest.approx(0.1),) * 2
    rows = {(r.start, r.strategy): r for r in summarise(runs, info, True)}
    assert rows[("big", CHOSEN)].gain is None and rows[("ae", CHOSEN)].baseline == "scratch"


def test_correlation_only_within_one_source_and_method_with_an_interval():
    info = {"scratch": StartInfo("net", False)}
    runs = []
    for i, (quality, method) in enumerate([(0.5, "supervised"), (0.6, "supervised"), (0.7, "supervised"),
                                           (0.8, "supervised"), (-0.01, "autoencoder"), (-0.02, "autoencoder")]):
        info[f"s{i}"] = StartInfo("net", True, "src", method, quality)
        runs += [_run(f"s{i}", seed, 0.6 + 0.05 * i + 0.01 * seed) for seed in range(2)]
    runs += [_run("scratch", seed, 0.5) for seed in range(2)]
    rows = summarise(runs, info, True)
    found, small = correlate(rows, info)
    chosen = [c for c in found if c.strategy == CHOSEN]
    assert len(chosen) == 1 and chosen[0].method == "supervised" and chosen[0].n == 4
    assert chosen[0].spearman == 1.0 and chosen[0].low is not None and chosen[0].low < 1.0
    assert small >= 1  # the two autoencoders are too few for a correlation


def test_spearman_interval_by_fisher_z():
    assert spearman_interval(0.5, 3) is None
    low, high = spearman_interval(0.5, 13)
    se = math.sqrt(1.06 / 10)
    assert low == pytest.approx(math.tanh(math.atanh(0.5) - 1.96 * se))
    assert high == pytest.approx(math.tanh(math.atanh(0.5) + 1.96 * se))


def test_convergence_budget_scales_with_the_subset():
    rule = Converge()
    assert rule.budget(50, 12) == (150, 38)  # 10 labels x 5 classes: 4 steps an epoch, capped at 150 epochs
    assert rule.budget(250, 62) == (150, 38)
    assert rule.budget(1_000, 64) == (40, 10)  # 15 steps an epoch: 600 steps
    assert rule.budget(27_000, 64) == (10, 3)  # large subsets: at least 10 passes
    assert Converge(patience=2).budget(50, 12) == (150, 2)


def test_curves_give_each_start_one_colour_in_both_arms_and_ticks_at_the_budgets():
    import types

    pytest.importorskip("matplotlib")
    from harness.select.study import CHOSEN, CONVERGED, EQUAL, curves_figure

    def row(arm, start, strategy, labels, mean):
        return {"arm": arm, "start": start, "strategy": strategy, "labels_per_class": labels, "mean": mean,
                "ci95": 0.02}

    table = [row(arm, start, strategy, labels, 0.5 + labels / 200)
             for start in ("scratch", "zoo-a", "zoo-b") for labels in (10, 50)
             for arm, strategy in ((EQUAL, "full"), (CONVERGED, CHOSEN), (CONVERGED, "linear"))]
    fig = curves_figure(types.SimpleNamespace(table=table, task="t", primary="accuracy"))
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 6  # equal steps and converged-chosen per start; the linear rows are not drawn
    by_start: dict[str, set] = {}
    for line, (start, _arm) in zip(lines, [(s, a) for s in ("scratch", "zoo-a", "zoo-b") for a in (0, 1)], strict=True):
        by_start.setdefault(start, set()).add(line.get_color())
    assert all(len(c) == 1 for c in by_start.values()) and len({c.pop() for c in by_start.values()}) == 3
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "50"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["scratch (full)", "zoo-a (full)", "zoo-b (full)"]
