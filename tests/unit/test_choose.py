"""The selection rules, tested on rows built by hand: nothing here trains, exports or reads a store."""

from __future__ import annotations

import math

import pytest

from harness.select.choose import decide, exclusions, kendall_tau, mark_pareto, mean_ci, pareto_flags, sort_rows
from harness.select.config import Constraints, SelectConfig
from harness.select.row import LeaderboardRow
from registry import UsageError


def row(name: str, acc: float, ms: float | None = 1.0, parity: str | None = "passed", params_m: float = 1.0,
        size_mb: float = 4.0, status: str = "ok") -> LeaderboardRow:
    return LeaderboardRow(name, "accuracy", status=status, model=f"{name}@1", metrics={"accuracy": acc}, val=acc,
                          ort_b1_ms=ms, parity=parity, params_m=params_m, size_mb=size_mb)


def test_mean_ci_single_value_and_t_interval():
    assert mean_ci([0.8]) == (0.8, 0.0)
    mean, half = mean_ci([0.80, 0.82, 0.84])
    assert mean == pytest.approx(0.82)
    # t(0.975, 2) = 4.303; stdev 0.02; half = 4.303 * 0.02 / sqrt(3)
    assert half == pytest.approx(4.3027 * 0.02 / math.sqrt(3), rel=1e-3)


def test_pareto_flags_keep_only_undominated_points():
    # (quality, latency): b dominates c; a is fastest; d is best
    points = [(0.80, 1.0), (0.85, 2.0), (0.84, 3.0), (0.90, 5.0)]
    assert pareto_flags(points) == [True, True, False, True]
    assert pareto_flags([(0.5, 1.0), (0.5, 1.0)]) == [True, True]  # ties dominate nobody


def test_lower_is_better_metrics_flip_the_front():
    rows = [row("a", 0.10, ms=1.0), row("b", 0.20, ms=0.5), row("c", 0.30, ms=2.0)]
    marked = mark_pareto(rows, higher_is_better=False)
    assert [r.pareto for r in marked] == [True, True, False]


def test_exclusions_name_every_broken_constraint():
    r = row("a", 0.9, ms=5.0, params_m=20.0, size_mb=80.0, parity="FAILED")
    why = exclusions(r, Constraints(max_latency_ms=2.0, max_params=10e6, max_size_mb=50.0))
    assert why == ["ONNX parity failed", "ORT latency 5.0 ms > 2.0", "20.0M params > 10M", "80.0 MB > 50.0 MB"]
    assert exclusions(row("b", 0.9), Constraints()) == []
    assert exclusions(row("c", 0.9, ms=None), Constraints(max_latency_ms=1.0))  # unmeasured is not eligible


def test_decide_picks_the_best_eligible_and_marks_the_rest():
    rows = [row("fast", 0.80, ms=0.5), row("best", 0.95, ms=9.0), row("broken", 0.99, parity="FAILED"),
            row("failed", 0.0, status="failed")]
    marked, winner = decide(rows, True, Constraints(max_latency_ms=5.0))
    assert winner is not None and winner.candidate == "fast" and winner.chosen
    by = {r.candidate: r for r in marked}
    assert "ORT latency" in by["best"].excluded and "parity" in by["broken"].excluded
    assert by["failed"].excluded is None and not by["failed"].chosen
    assert sum(r.chosen for r in marked) == 1


def test_nan_never_wins_and_nothing_eligible_means_no_winner():
    _, winner = decide([row("nan", float("nan")), row("ok", 0.5)], True, Constraints())
    assert winner is not None and winner.candidate == "ok"
    _, none = decide([row("a", 0.9, parity="FAILED")], True, Constraints())
    assert none is None


def test_kendall_tau_on_orders_whose_agreement_is_known():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2], [1, 2]) is None  # too few to rank
    assert kendall_tau([1, 2, 3], [5, 5, 5]) is None  # no variation


def test_sort_rows_puts_rows_without_the_key_last():
    rows = [row("a", 0.7, ms=3.0), row("b", 0.9, ms=None), row("c", 0.8, ms=1.0)]
    assert [r.candidate for r in sort_rows(rows, "accuracy", True)] == ["b", "c", "a"]
    assert [r.candidate for r in sort_rows(rows, "ort_b1_ms", False)] == ["c", "a", "b"]


def test_row_json_is_strict_and_keeps_every_metric():
    r = LeaderboardRow("a", "accuracy", metrics={"accuracy": float("nan"), "macro_f1": 0.5, "my_metric": 0.1},
                       seeds=2, ci95=0.01)
    data = r.as_dict()
    assert data["accuracy"] is None and data["my_metric"] == 0.1 and data["accuracy_ci95"] == 0.01


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"seeds": 0}, "seeds"), ({"budget": "huge"}, "budget"), ({"top_k": 2}, "top_k"),
    ({"top_k": 2, "prescreen": "knn", "then": "standard"}, "top_k"), ({"then": "quick"}, "then"),
    ({"budget": "full", "then": "standard"}, "then"), ({"then_epochs": 3}, "then_epochs"),
    ({"prefer": "cheap"}, "prefer"),
    ({"prescreen": "magic"}, "prescreen"), ({"constraints": None}, None),
])
def test_select_config_refuses_bad_values_naming_the_parameter(kwargs, param):
    if param is None:
        with pytest.raises(UsageError, match="max_latency_ms must be positive"):
            Constraints(max_latency_ms=-1)
        return
    with pytest.raises(UsageError) as info:
        SelectConfig("synthetic", **kwargs)
    assert info.value.param == param and str(info.value).startswith(param)


def test_timings_from_a_busy_or_noisy_machine_are_called_unreliable():
    from harness.onnx.contention import busy_cores, timing_problems

    assert timing_problems([0.1, None], {"torch b1": 1.1}) == []
    problems = timing_problems([0.1, 1.8], {"torch b1": 3.0, "onnxruntime b1": 1.0})
    assert problems[0].startswith("machine busy: other processes used 1.8") and "torch b1 p90/median 3.0" in problems[1]
    measured = busy_cores(0.05)
    assert measured is None or measured >= 0


def test_compact_view_fits_120_columns_and_moves_reasons_to_notes():
    from harness.select.view import compact

    rows = [row("mobilenet_v3_small.tv_in1k", 0.91234), row("cifar_convnet_s", 0.9, parity="FAILED"),
            LeaderboardRow("resnet50.tv2_in1k", "accuracy", status="skipped", reason="not cached",
                           place="https://download.pytorch.org/models/resnet50-11ad3fa6.pth -> /root/.cache/x.pth"),
            LeaderboardRow("busy_net", "accuracy", metrics={"accuracy": 0.5}, timing="machine busy")]
    rows[0] = LeaderboardRow(**{**rows[0].__dict__, "ci95": 0.0123, "seeds": 3, "chosen": True})
    text = compact(rows, "accuracy")
    table = text.split("\n\n")[0]
    assert max(len(line) for line in table.splitlines()) <= 120
    assert "0.9123 ±0.0123" in text and "[1] resnet50.tv2_in1k: not cached; place https://" in text
    assert "latency unreliable: machine busy" in text and "~" in table


# -- choosing on validation, with paired comparisons ------------------------------------------------

def test_the_choice_uses_validation_never_test():
    lucky = LeaderboardRow("lucky", "accuracy", model="lucky@1", metrics={"accuracy": 0.95}, val=0.80,
                           ort_b1_ms=1.0, parity="passed")
    steady = LeaderboardRow("steady", "accuracy", model="steady@1", metrics={"accuracy": 0.90}, val=0.88,
                            ort_b1_ms=1.0, parity="passed")
    _, winner = decide([lucky, steady], True, Constraints())
    assert winner is not None and winner.candidate == "steady"
    no_val = LeaderboardRow("no_val", "accuracy", metrics={"accuracy": 0.99}, parity="passed", ort_b1_ms=1.0)
    _, winner = decide([no_val, steady], True, Constraints())
    assert winner.candidate == "steady"  # a row without a validation score is shown, never chosen


def _diff(d: float, low: float, high: float):
    from harness.evaluate.paired import PairedDiff

    return PairedDiff("accuracy", d, low, high, 0.5, 1000, 1, 10_000)


@pytest.mark.parametrize(("prefer", "expected"), [("best", "big"), ("fastest", "fast"), ("smallest", "small")])
def test_prefer_chooses_among_the_rows_tied_with_the_best(prefer, expected):
    rows = [row("big", 0.90, ms=9.0, size_mb=40.0), row("fast", 0.89, ms=0.5, size_mb=20.0),
            row("small", 0.885, ms=3.0, size_mb=1.0), row("worse", 0.80, ms=0.1, size_mb=0.5)]
    diffs = {"fast": _diff(-0.01, -0.02, 0.001), "small": _diff(-0.015, -0.03, 0.0),
             "worse": _diff(-0.1, -0.12, -0.08)}
    marked, winner = decide(rows, True, Constraints(), prefer, lambda r, best: diffs[r.candidate])
    assert winner is not None and winner.candidate == expected
    by = {r.candidate: r for r in marked}
    assert by["fast"].tied and by["small"].tied and by["big"].tied and not by["worse"].tied
    assert by["worse"].vs_best is diffs["worse"] and by["big"].vs_best is None  # the best is not compared with itself
    assert sum(r.chosen for r in marked) == 1


def test_rows_that_cannot_be_paired_are_not_called_tied():
    rows = [row("a", 0.9), row("b", 0.89, ms=0.1)]
    marked, winner = decide(rows, True, Constraints(), "fastest", lambda r, best: None)
    assert winner.candidate == "a" and not {r.candidate: r for r in marked}["b"].tied


def test_top_by_validation_skips_excluded_and_failed_rows():
    from harness.select.choose import top_by_validation

    rows = [row("a", 0.7), row("b", 0.9), row("c", 0.8), row("d", 0.95, status="failed")]
    rows[1] = LeaderboardRow(**{**rows[1].__dict__, "excluded": "too slow"})
    assert [r.candidate for r in top_by_validation(rows, 2, True)] == ["c", "a"]
