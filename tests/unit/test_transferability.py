"""Transferability scores and rank checks on constructed cases whose right order is known.

Each candidate's features are class centres scaled by a signal-to-noise ratio plus unit Gaussian
noise: more signal means better separable classes, so a fine-tuned head ranks them by that ratio,
and every prescreen must too (tau 1). A second case plants the signal in a few of many dimensions,
which a score that is fooled by width (more dimensions = better) gets wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.select.config import PRESCREENS
from harness.select.rankcheck import agreement, rank_check
from harness.select.transferability import score_set, transfer_score

SNRS = (0.9, 0.6, 0.42, 0.3, 0.2, 0.1)  # below saturation of knn/linear at 1,000 samples


def _features(snr: float, seed: int, n: int = 1000, d: int = 48, k: int = 5, noise_dims: int = 0,
              noise_seed: int | None = None):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    centres = np.random.default_rng(99).normal(size=(k, d))
    noise = rng if noise_seed is None else np.random.default_rng(1000 + noise_seed)
    x = snr * centres[labels] + noise.normal(size=(n, d))
    if noise_dims:
        x = np.hstack([x, rng.normal(size=(n, noise_dims)) * 3.0])
    return x, labels


@pytest.mark.parametrize("method", [m for m in PRESCREENS if m != "ncti"])
def test_each_prescreen_orders_candidates_by_their_known_separability(method):
    labels = _features(SNRS[0], seed=0)[1]  # one target: every candidate's features of the same images
    scores = score_set(method, {f"snr{snr}": _features(snr, seed=0, noise_seed=i)[0] for i, snr in enumerate(SNRS)},
                       labels)
    truth = {f"snr{snr}": snr for snr in SNRS}
    found = agreement(method, scores, truth)
    assert found.n == len(SNRS)
    assert found.kendall == pytest.approx(1.0), scores
    assert found.weighted == pytest.approx(1.0), scores


def test_ncti_orders_separable_candidates_but_its_variability_term_rewards_uniform_guesses():
    """NCTI's variability term (summed nuclear norms of each class's predicted probabilities) is
    small both when a class collapses to one confident prediction and when every prediction is the
    same near-uniform guess: on barely separable features it ranks the worse above the better."""
    from harness.select.ncti import ncti_parts, ncti_scores

    labels = _features(SNRS[0], seed=0)[1]
    parts = {snr: ncti_parts(_features(snr, seed=0, noise_seed=i)[0], labels) for i, snr in enumerate(SNRS)}
    scores = ncti_scores(parts)
    assert [scores[s] for s in SNRS[:5]] == sorted((scores[s] for s in SNRS[:5]), reverse=True), scores
    assert parts[0.1].variability < parts[0.3].variability and scores[0.1] > scores[0.2]  # the flaw, measured
    assert [parts[s].ncc for s in SNRS] == sorted((parts[s].ncc for s in SNRS), reverse=True)


@pytest.mark.parametrize("method", ["logme", "sfda", "ncti"])
def test_wide_noisy_features_do_not_beat_narrow_informative_ones(method):
    labels = _features(0.6, seed=1, d=16)[1]
    found = score_set(method, {"narrow": _features(0.6, seed=1, d=16)[0],
                               "wide": _features(0.2, seed=1, d=16, noise_dims=240)[0],
                               "noise": _features(0.0, seed=1, d=64)[0]}, labels)
    assert found["narrow"] > found["wide"] > found["noise"] or method != "ncti", found
    assert found["narrow"] > found["wide"]


def test_ncti_is_refused_for_one_candidate_alone():
    from registry import UsageError

    with pytest.raises(UsageError, match="relative to each other"):
        transfer_score("ncti", *_features(0.5, seed=1))


def test_sfda_is_a_probability_and_survives_dead_feature_dimensions():
    x, y = _features(0.5, seed=3)
    x = np.hstack([x, np.zeros((len(x), 8))])  # ReLU features that never fire
    value = transfer_score("sfda", x, y)
    assert 1 / 5 < value <= 1.0


def test_rank_check_says_when_a_free_baseline_cannot_be_told_from_the_prescreen():
    truth = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
    prescreen = {"a": 0.3, "b": 0.1, "c": 0.2, "d": 0.0}  # b and c swapped
    params = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}  # bigger is better here, exactly
    pretraining = {"a": 0.5, "d": 0.9, "c": 0.6}  # covers three, backwards
    check = rank_check("knn", prescreen, truth, {"parameter count": params, "pretraining score": pretraining})
    assert check.prescreen.kendall == pytest.approx(2 / 3, abs=1e-3)
    assert check.prescreen.p_value > 0.05  # 4 candidates: 2/3 is what random orders often reach
    assert check.beaten_by == [] and "parameter count" in check.tied_with  # one swap among 4 is noise
    base, same = check.baselines[1]
    assert (base.n, same.n) == (3, 3)
    assert base.kendall == pytest.approx(-1.0)
    text = "\n".join(check.lines())
    assert "indistinguishable here" in text and "weighted tau" in text and "over 4 candidates" in text
    assert check.as_dict()["indistinguishable_from"] == check.tied_with


def test_rank_check_with_too_few_candidates_reports_no_tau():
    check = rank_check("logme", {"a": 1.0, "b": 2.0}, {"a": 0.1, "b": 0.2}, {"parameter count": {"a": 1, "b": 2}})
    assert check.prescreen.kendall is None and check.beaten_by == []
    assert "n/a" in check.lines()[0]
