"""select's plan and estimate (harness/select/estimate.py) and the own-data quick budget's size."""

from __future__ import annotations

from harness.data.datatask import quick_epochs
from harness.select.estimate import STAGE_OVERHEAD_S, CandidateCost, Estimate


def _estimate(**kwargs) -> Estimate:
    costs = (CandidateCost("cifar_convnet_xs", 2000.0, 30.0), CandidateCost("cifar_resnet20", 400.0, 120.0),
             CandidateCost("cifar_resnet8", 0.0, 0.0, cached_seeds=1))
    return Estimate(costs, epochs=15, seeds=1, train_images=2160, val_images=240, test_images=600, input_size=32,
                    **kwargs)


def test_estimate_adds_candidates_and_prints_a_range_with_the_speeds():
    plan, line = _estimate().lines()
    assert _estimate().seconds == 150.0
    assert plan.startswith("plan: 3 candidates x 15 epochs at 32px on 2,160 training images")
    assert "(1 already in the store)" in plan
    assert line.startswith("estimate: 2 min-4 min on this machine")  # 0.8x and 1.5x of 150 s
    assert "cifar_resnet20 400 img/s" in line and "cifar_resnet8" not in line  # cached: nothing measured


def test_a_time_limit_bounds_the_estimate():
    bounded = _estimate(time_limit_s=60.0)
    assert bounded.seconds == 60.0 + 3 * STAGE_OVERHEAD_S
    assert "--time-limit stops training at 60 s" in bounded.lines()[1]


def test_quick_epochs_keep_the_work_per_candidate_about_constant():
    assert quick_epochs(2400) == 11  # 3,000 photos less a 20% test split
    assert quick_epochs(100) == 30 and quick_epochs(60_000) == 2  # bounded; train_limit caps big folders
    passes = [quick_epochs(n) * min(n * 0.9, 12_000) for n in (2_000, 5_000, 20_000)]
    assert max(passes) / min(passes) < 1.5


def test_halving_rungs_and_the_plan_line():
    from harness.select.estimate import halving_rungs

    assert halving_rungs(4, 9) == ((4, 1), (1, 9))  # the best third, rounded down; a lone one skips to the last
    assert halving_rungs(9, 9) == ((9, 1), (3, 3), (1, 9))
    assert halving_rungs(1, 9) == ((1, 9),)  # nothing to compare: straight to the last rung
    assert halving_rungs(6, 3) == ((6, 1), (2, 3))
    plan = _estimate(rungs=((3, 1), (1, 3), (1, 9)), halving_extra_s=10.0)
    assert plan.seconds == 160.0
    assert "3 candidates by successive halving to 15 epochs (rungs of 3 x 1 ep, 1 x 3 ep, 1 x 9 ep)" in plan.lines()[0]


def test_a_lone_survivor_skips_to_the_last_rung_that_fits_the_time_left():
    from types import SimpleNamespace

    from harness.select.halving import _next_rung, survivors

    assert [survivors(n) for n in (1, 2, 3, 4, 8, 9)] == [1, 1, 1, 1, 2, 3]  # Hyperband's floor, at least one
    epochs, lone, pair = [1, 3, 9], [SimpleNamespace(ref="a")], [SimpleNamespace(ref="a"), SimpleNamespace(ref="b")]
    reached = {"a": (None, 10.0), "b": (None, 10.0)}  # 10 s per epoch
    assert _next_rung(0, epochs, pair, reached, None) == 1  # two go on: the next rung compares them
    assert _next_rung(0, epochs, lone, reached, None) == 2  # no limit: straight to the last
    assert _next_rung(0, epochs, lone, reached, 100.0) == 2  # 8 more epochs, 80 s: fits
    assert _next_rung(0, epochs, lone, reached, 50.0) == 1  # only 2 more fit
    assert _next_rung(0, epochs, lone, reached, 5.0) == 1  # nothing fits: the next, which the loop then stops
    assert _next_rung(2, epochs, lone, reached, None) is None
