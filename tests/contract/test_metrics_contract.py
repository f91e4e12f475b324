"""Every metric declares its direction and kind, and matches a hand computation."""

from __future__ import annotations

import pytest
import torch

# logits for 6 samples, 3 classes; predictions are [0, 1, 2, 0, 1, 1], targets [0, 1, 2, 1, 1, 2]
LOGITS = torch.tensor([[3.0, 1, 0], [0, 2, 1], [0, 1, 4], [2, 1.5, 0], [0, 3, 0], [1, 2, 1.9]])
TARGETS = torch.tensor([0, 1, 2, 1, 1, 2])


def _hand_macro():
    # per class: tp, fp, fn -> class0: tp1 fp1 fn0; class1: tp2 fp1 fn1; class2: tp1 fp0 fn1
    precision = [1 / 2, 2 / 3, 1 / 1]
    recall = [1 / 1, 2 / 3, 1 / 2]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall, strict=True)]
    return sum(precision) / 3, sum(recall) / 3, sum(f1) / 3


def _hand_ece(n_bins: int = 15) -> float:
    probs = LOGITS.softmax(1)
    conf, pred = probs.max(1)
    correct = (pred == TARGETS).float()
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            total += in_bin.float().mean() * abs(conf[in_bin].mean() - correct[in_bin].mean())
    return float(total)


def test_every_metric_declares_direction_and_kind(catalogue):
    for metric in catalogue.metrics:
        assert isinstance(metric.higher_is_better, bool), metric.name
        assert metric.kind in ("quality", "efficiency") and metric.unit, metric.name


def test_every_builtin_metric_has_a_hand_check(catalogue):
    assert set(catalogue.metrics.names()) == set(QUALITY) | set(EFFICIENCY)


P, R, F = _hand_macro()
QUALITY = {
    "accuracy": 4 / 6,
    "top5_accuracy": 1.0,  # k = min(5, 3 classes)
    "macro_precision": P,
    "macro_recall": R,
    "macro_f1": F,
    "ece": _hand_ece(),
}


@pytest.mark.parametrize("name", sorted(QUALITY))
def test_quality_metric_matches_hand_computation(catalogue, name):
    value = catalogue.metrics.get(name).compute(LOGITS, TARGETS, 3)
    assert value == pytest.approx(QUALITY[name], abs=1e-6)


def test_top5_with_more_classes(catalogue):
    logits = torch.arange(60, dtype=torch.float32).reshape(6, 10)  # class 9 always ranked first
    targets = torch.tensor([9, 8, 7, 6, 5, 0])  # ranks 1..5 are in the top 5; class 0 is last
    assert catalogue.metrics.get("top5_accuracy").compute(logits, targets, 10) == pytest.approx(5 / 6)


def _tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))


EFFICIENCY = {
    # conv 3*4*9 + bn 4+4 + linear 144*5+5
    "params": 108 + 8 + 725,
    # conv: 2*108 MACs per output pixel * 36 pixels; linear 2*144*5 (BN is not a matmul)
    "flops": 2 * 108 * 36 + 2 * 144 * 5,
    # float32 params + BN buffers (running mean/var 4+4, num_batches_tracked int64)
    "size_mb": ((108 + 8 + 725) * 4 + 8 * 4 + 8) / 1e6,
}


@pytest.mark.parametrize("name", sorted(EFFICIENCY))
def test_efficiency_metric_matches_hand_computation(catalogue, name):
    metric = catalogue.metrics.get(name)
    assert metric.kind == "efficiency" and metric.higher_is_better is False
    assert metric.compute(_tiny_model(), torch.zeros(1, 3, 8, 8)) == pytest.approx(EFFICIENCY[name])


def test_flops_unit_says_two_per_multiply_add(catalogue):
    assert "2 per multiply-add" in catalogue.metrics.get("flops").unit
