"""The INT8 decision on constructed figures: slower or less accurate INT8 is never offered."""

from __future__ import annotations

import json

import pytest

from harness.errors import UsageError
from harness.evaluate.int8 import AccuracyCheck, Int8Policy, Int8Verdict, SpeedCheck, decide
from harness.evaluate.paired import PairedDiff
from harness.onnx.quantize import OpCount


def speed(batch: int, fp32: float, int8: float, rounds: tuple[float, ...] = (2.0, 2.1, 1.9)) -> SpeedCheck:
    return SpeedCheck(batch, fp32, int8, rounds)


def acc(split: str, change_points: float, n: int = 2000) -> AccuracyCheck:
    diff = change_points / 100
    return AccuracyCheck(split, 0.9, round(0.9 + diff, 4),
                         PairedDiff("accuracy", diff, diff - 0.003, diff + 0.003, 0.5, n, 1, 10_000))


FAST = (speed(1, 1.0, 0.5), speed(32, 20.0, 8.0, (2.4, 2.6, 2.5)))


def test_faster_and_accurate_is_offered():
    offered, why, split = decide(FAST, (acc("val", -0.3), acc("test", -0.4)), Int8Policy())
    assert offered and split == "val" and "1 points on val" in why


def test_slower_at_any_batch_is_refused_whatever_the_accuracy():
    slow = (speed(1, 1.0, 1.25, (0.8, 0.79, 0.81)), speed(32, 20.0, 8.0))
    offered, why, _ = decide(slow, (acc("val", +0.5),), Int8Policy(max_drop_points=100, min_speedup=1.0))
    assert not offered and why.startswith("slower than FP32 (0.8x at batch 1)")


def test_a_speed_up_inside_the_noise_is_refused():
    lost_a_round = (speed(1, 1.0, 0.7, (1.6, 0.95, 1.5)), speed(32, 20.0, 8.0))
    offered, why, _ = decide(lost_a_round, (acc("val", 0.0),), Int8Policy())
    assert not offered and "not faster beyond noise" in why and "faster in 2 of 3 rounds" in why
    marginal = (speed(1, 1.0, 0.95, (1.05, 1.06, 1.04)),)
    offered, why, _ = decide(marginal, (acc("val", 0.0),), Int8Policy())
    assert not offered and "1.05x at batch 1" in why
    assert decide(marginal, (acc("val", 0.0),), Int8Policy(min_speedup=1.0))[0]


def test_too_few_rounds_cannot_tell_a_speed_up_from_noise():
    one_round = (speed(1, 1.0, 0.5, (2.0,)),)
    offered, why, _ = decide(one_round, (acc("val", 0.0),), Int8Policy())
    assert not offered and "1 round(s); 3 are needed" in why


def test_accuracy_is_judged_on_validation_and_test_only_without_it():
    policy = Int8Policy(max_drop_points=1.0)
    offered, why, split = decide(FAST, (acc("val", -1.5), acc("test", -0.1)), policy)
    assert not offered and split == "val" and "loses 1.50 points on val" in why
    offered, _, split = decide(FAST, (acc("val", -0.2), acc("test", -3.0)), policy)
    assert offered and split == "val"  # test is reported, never decides when validation exists
    offered, why, split = decide(FAST, (acc("test", -1.2),), policy)
    assert not offered and split == "test" and "on test" in why


def test_every_failed_condition_is_named():
    slow = (speed(1, 1.0, 2.0, (0.5, 0.5, 0.5)),)
    offered, why, _ = decide(slow, (acc("val", -5.0),), Int8Policy())
    assert not offered and "slower" in why and "loses 5.00 points" in why
    assert decide((), (), Int8Policy())[1] == "speed not measured; accuracy not measured"


@pytest.mark.parametrize("kwargs, param", [({"max_drop_points": -1}, "int8_max_drop"),
                                           ({"min_speedup": 0.9}, "int8_min_speedup"),
                                           ({"min_rounds": 0}, "int8_rounds")])
def test_policy_refuses_values_that_would_offer_slower_int8(kwargs, param):
    with pytest.raises(UsageError) as err:
        Int8Policy(**kwargs)
    assert err.value.param == param


def verdict(offered_speed: tuple[SpeedCheck, ...]) -> Int8Verdict:
    accuracy = (acc("val", -0.2), acc("test", -0.4))
    offered, why, split = decide(offered_speed, accuracy, Int8Policy())
    return Int8Verdict(offered, why, split, (OpCount("Conv", 6, 6), OpCount("ReduceMean", 0, 1),
                                             OpCount("Gemm", 1, 1)), True, 512, 1.2, 0.33, offered_speed,
                       accuracy, Int8Policy(), 2)


def test_verdict_text_columns_and_round_trip():
    good = verdict(FAST)
    assert good.summary() == "2.0-2.5x faster, -0.2 pts, 0.28x size"
    assert good.quantised_text() == "Conv 6/6, Gemm 1/1"
    columns = good.columns()
    assert columns["int8_offered"] is True and columns["int8_speedup_b1"] == 2.0
    assert columns["int8_drop_pts"] == 0.2 and columns["int8_drop_on"] == "val"
    assert Int8Verdict.from_dict(json.loads(json.dumps(good.as_dict()))) == good
    bad = verdict((speed(1, 1.0, 1.25, (0.8, 0.8, 0.8)),))
    assert bad.summary() == "not offered: slower than FP32 (0.8x at batch 1)"
    assert "INT8 not offered" in bad.line() and "b1 1->1.25 ms (0.8x, faster in 0/3 rounds)" in bad.line()
