"""The prescreen benchmark's parts (``benchmarks/prescreen.py``): targets kept off the zoo's
pretraining classes, the digits written as a real image folder, the truth's training schedule, and
the pooled statistics on orders whose agreement is known. The whole run is in
``tests/e2e/test_prescreen_smoke.py`` (slow)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import prescreen as bench  # the benchmark itself: its checks are what these tests hold
from prescreen_stats import Ranking, on_common, pooled, pooled_difference, seed_stability

from registry import UsageError


def test_no_target_shares_a_class_with_the_zoos_pretraining(ctx):
    bench.check_disjoint(ctx, bench.ZOO, bench.TARGETS)
    bench.check_disjoint(ctx, bench.SMOKE_ZOO, bench.SMOKE_TARGETS)
    assert len(bench.TARGETS) >= 4 and any(t.base != "fashion-mnist" for t in bench.TARGETS)
    assert len({(t.base, t.classes, t.labels) for t in bench.TARGETS}) == len(bench.TARGETS)


@pytest.mark.parametrize("classes", ["0-9", "4-6", "Coat+Bag", None])
def test_a_target_on_a_pretraining_class_is_refused(ctx, classes):
    target = bench.Target("overlap", "fashion-mnist", classes, 10)
    with pytest.raises(UsageError, match=r"uses class\(es\) \[.*4.*\] of fashion-mnist"):
        bench.check_disjoint(ctx, bench.ZOO, (target,))


def test_the_zoo_differs_in_architecture_and_pretraining():
    groups = bench.ZOO["groups"]
    assert len({b for g in groups for b in g["backbones"]}) >= 4
    assert {g["method"] for g in groups} >= {"supervised", "autoencoder", "contrastive"}
    assert bench.FULL.seeds >= 3 and bench.FULL.scratch


def test_target_views_carry_validation_images_and_the_seed():
    t = bench.Target("x", "fashion-mnist", "5+7+9", 25)
    assert t.task(0, 20) == "fashion-mnist:classes=5+7+9,per_class=45"
    assert t.task(2, 20) == "fashion-mnist:classes=5+7+9,per_class=45,seed=2"
    assert bench.Target("d", "digits", None, 10).task(1, 20) == "digits:per_class=30,seed=1"


def test_schedule_gives_small_sets_small_batches_and_enough_steps():
    batch, epochs, patience = bench.FULL.schedule(50, 64)
    assert (batch, epochs, patience) == (12, 80, 16)  # 5 steps an epoch: 400 steps
    batch, epochs, patience = bench.FULL.schedule(500, 64)
    assert (batch, epochs, patience) == (64, 50, 10)
    assert bench.FULL.schedule(60_000, 64)[1] == bench.FULL.min_epochs


def test_digits_are_written_once_as_a_real_image_folder(tmp_path):
    pytest.importorskip("sklearn")
    from PIL import Image

    root = bench.write_digits(tmp_path / "digits")
    train = sorted(root.glob("train/*/*.png"))
    test = sorted(root.glob("test/*/*.png"))
    assert len(train) + len(test) == 1797 and abs(len(train) - len(test)) <= 10
    assert {p.parent.name for p in train} == {str(d) for d in range(10)}
    assert not {p.name for p in train} & {p.name for p in test}
    pixels = np.asarray(Image.open(train[0]))
    assert pixels.shape == (8, 8) and pixels.dtype == np.uint8 and pixels.max() > 200
    stamp = (root / "DONE").stat().st_mtime_ns
    bench.write_digits(root)
    assert (root / "DONE").stat().st_mtime_ns == stamp


def _rankings(truths, flip=False):
    return [Ranking(f"t{i}", (-t if flip else t).astype(float), t.astype(float)) for i, t in enumerate(truths)]


TRUTHS = [np.arange(8.0), np.arange(6.0) * 2, np.array([3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0])]


def test_pooled_agreement_and_its_joint_permutation_p_value():
    right = pooled("right", _rankings(TRUTHS), draws=150)
    assert (right.targets, right.candidates) == (3, 21)
    assert right.kendall == pytest.approx(1.0) and right.weighted == pytest.approx(1.0) and right.regret == 0
    assert right.weighted_p < 0.01
    wrong = pooled("wrong", _rankings(TRUTHS, flip=True), draws=150)
    assert wrong.weighted == pytest.approx(-1.0) and wrong.weighted_p > 0.99 and wrong.regret > 0
    assert pooled("none", [Ranking("t", np.ones(2), np.arange(2.0))]).weighted is None  # under 3 candidates


def test_pooled_difference_is_zero_for_the_same_order_and_beyond_noise_for_opposites():
    same = pooled_difference("a", _rankings(TRUTHS), "b", _rankings(TRUTHS), draws=100)
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0) and not same.beyond_noise
    apart = pooled_difference("a", _rankings(TRUTHS), "b", _rankings(TRUTHS, flip=True), draws=100)
    assert apart.diff == pytest.approx(2.0) and apart.beyond_noise and apart.low > 1.0


def test_orders_are_compared_on_the_candidates_both_cover():
    truth = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
    common = on_common("t", {"x": {"a": 1.0, "b": 0.5, "c": 0.2}, "y": {"b": 3.0, "c": 2.0, "d": 1.0}}, truth)
    assert common["x"].truth.tolist() == common["y"].truth.tolist() == [0.8, 0.7]
    assert seed_stability([truth, truth]) == pytest.approx(1.0)
    assert seed_stability([truth, {k: -v for k, v in truth.items()}]) == pytest.approx(-1.0)


def test_standardised_sfda_is_compared_head_to_head_with_sfda():
    target = bench.TARGETS[0]
    truth = {f"m{i}": 0.5 + i / 20 for i in range(8)}
    result = bench.TargetResult(target, per_seed=[truth])
    result.orders = {"sfda (standardised)": dict(truth), "sfda": {k: -v for k, v in truth.items()}}
    (row,) = bench.paired_rows([result])
    assert row["first"] == "sfda (standardised)" and row["second"] == "sfda"
    assert row["diff"] == pytest.approx(2.0) and row["beyond_noise"]
    del result.orders["sfda"]
    assert bench.paired_rows([result]) == []  # a run without both variants has no pair
