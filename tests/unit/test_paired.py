"""Paired statistics on constructed predictions: the interval, the p-value and seeds behave as stated."""

from __future__ import annotations

import numpy as np
import pytest

from harness.evaluate.paired import SeedPair, mcnemar_exact, paired_bootstrap
from harness.select.rankcheck import agreement, difference, rank_check


def _pair(n: int, only_a: int, only_b: int, both_right: int, classes: int = 3, seed: int = 0) -> SeedPair:
    """Two models' logits on ``n`` images: ``only_a`` right only for a, ``only_b`` only for b, ``both_right`` both."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    wrong = (labels + 1) % classes
    right_a = np.zeros(n, bool)
    right_b = np.zeros(n, bool)
    right_a[:only_a] = True
    right_b[only_a:only_a + only_b] = True
    right_a[only_a + only_b:only_a + only_b + both_right] = True
    right_b[only_a + only_b:only_a + only_b + both_right] = True

    def logits(right: np.ndarray) -> np.ndarray:
        out = np.zeros((n, classes), np.float32)
        out[np.arange(n), np.where(right, labels, wrong)] = 1.0
        return out

    return SeedPair(labels, logits(right_a), logits(right_b))


def test_identical_models_differ_by_zero_with_p_one():
    pair = _pair(500, 0, 0, 400)
    diff = paired_bootstrap([pair])
    assert (diff.diff, diff.low, diff.high, diff.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert not diff.significant and diff.text() == "+0.0 [+0.0, +0.0]"


def test_a_clear_difference_is_significant_and_its_interval_covers_it():
    diff = paired_bootstrap([_pair(2000, 120, 20, 1500)])
    assert diff.diff == pytest.approx(0.05)
    assert 0 < diff.low < 0.05 < diff.high and diff.significant and diff.p_value < 0.001
    # the sign follows the order of the models
    assert paired_bootstrap([SeedPair(*(lambda p: (p.labels, p.b, p.a))(_pair(2000, 120, 20, 1500)))]).diff == -0.05


@pytest.mark.parametrize(("only_a", "only_b"), [(30, 15), (25, 20), (40, 10), (12, 5)])
def test_bootstrap_p_value_agrees_with_exact_mcnemar(only_a, only_b):
    pair = _pair(2000, only_a, only_b, 1600)
    boot = paired_bootstrap([pair]).p_value
    exact = mcnemar_exact(pair)
    assert boot == pytest.approx(exact, abs=0.03 + 0.25 * exact)


def test_a_difference_within_the_noise_is_a_tie():
    diff = paired_bootstrap([_pair(1000, 12, 8, 800)])  # 4 images of 1,000
    assert diff.low < 0 < diff.high and not diff.significant


def test_seeds_that_disagree_widen_the_interval():
    agree = [_pair(2000, 60, 20, 1500, seed=s) for s in range(3)]
    disagree = [_pair(2000, 140, 20, 1500, seed=0), _pair(2000, 20, 20, 1500, seed=1), _pair(2000, 20, 100, 1500, 2)]
    a, d = paired_bootstrap(agree), paired_bootstrap(disagree)
    assert a.n_seeds == d.n_seeds == 3 and a.n_images == 6000
    assert (d.high - d.low) > 3 * (a.high - a.low)
    assert a.significant and not d.significant


def test_generic_metrics_use_the_scorer_and_agree_with_the_fast_path_on_accuracy():
    pair = _pair(800, 50, 20, 600)

    def accuracy(logits, labels):
        return float((logits.argmax(1) == labels).mean())

    fast = paired_bootstrap([pair])
    slow = paired_bootstrap([pair], "accuracy", accuracy, resamples=2000)
    assert slow.diff == fast.diff
    assert slow.low == pytest.approx(fast.low, abs=0.006) and slow.high == pytest.approx(fast.high, abs=0.006)


def test_pairs_must_cover_the_same_images():
    with pytest.raises(ValueError, match="same"):
        SeedPair(np.zeros(3), np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="nothing to compare"):
        paired_bootstrap([])


# -- rank agreement with its noise -----------------------------------------------------------------

def test_agreement_carries_a_permutation_p_value_and_first_pick_regret():
    truth = {str(i): float(i) for i in range(12)}
    perfect = agreement("x", truth, truth)
    assert perfect.kendall == 1.0 and perfect.p_value < 0.001 and perfect.regret == 0.0
    assert 0.2 < perfect.null95 < 0.7  # random orders of 12 reach this one time in 20
    rng = np.random.default_rng(3)
    noise = agreement("random", {k: float(rng.random()) for k in truth}, truth)
    assert noise.p_value > 0.05 and noise.weighted_p > 0.05
    wrong_pick = agreement("x", {**truth, "0": 99.0}, truth)  # ranks the worst first
    assert wrong_pick.regret == 11.0
    assert "permutation" not in wrong_pick.text() and "p=" in wrong_pick.text() and "over 12" in wrong_pick.text()


def test_a_baseline_beats_the_prescreen_only_beyond_the_noise():
    truth = {str(i): float(i) for i in range(10)}
    slightly_off = {**truth, "8": 9.5, "9": 8.5}
    noisy = {k: v + (3.0 if int(k) % 2 else -3.0) for k, v in truth.items()}
    close = difference(truth, slightly_off, truth)
    assert close is not None and not close.beyond_noise
    check = rank_check("knn", slightly_off, truth, {"parameter count": truth})
    assert check.beaten_by == [] and check.tied_with == ["parameter count"]
    assert "indistinguishable here" in "\n".join(check.lines())
    reversed_ = {k: -v for k, v in truth.items()}
    check = rank_check("knn", reversed_, truth, {"parameter count": noisy})
    assert check.beaten_by == ["parameter count"]
    assert "did not beat parameter count here, beyond the noise" in "\n".join(check.lines())
