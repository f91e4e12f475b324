"""Calibration (harness/predictions/calibration.py): ECE equal to the ece metric plugin's, a fitted
temperature that repairs over-confidence and never changes accuracy."""

from __future__ import annotations

import numpy as np
import torch

from harness.predictions.calibration import calibrate, ece, fit_temperature, nll
from plugins.metrics import expected_calibration_error


def _overconfident(n: int = 4000, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a model right ~70% of the time but ~99% sure: scaled-up well-calibrated logits."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), labels] += 2.0
    return logits * 4.0, labels


def test_ece_matches_the_metric_plugin():
    logits, labels = _overconfident()
    ours = ece(logits, labels)
    theirs = expected_calibration_error(torch.from_numpy(logits), torch.from_numpy(labels), 10)
    assert abs(ours - theirs) < 1e-5 and ours > 0.1


def test_temperature_scaling_repairs_overconfidence_on_held_out_images():
    val, val_labels = _overconfident(seed=1)
    test, test_labels = _overconfident(seed=2)
    t = fit_temperature(val, val_labels)
    assert 1.5 < t < 5.5  # the logits were scaled up by 4
    assert nll(val, val_labels, t) < nll(val, val_labels) and nll(val, val_labels, t) <= nll(val, val_labels, t * 1.1)
    result = calibrate(val, val_labels, test, test_labels)
    assert result.ece_after < result.ece_before / 3 and result.nll_after < result.nll_before
    assert ((test / t).argmax(1) == test.argmax(1)).all()  # accuracy unchanged


def test_reliability_bins_cover_every_image_and_move_to_the_diagonal_after_scaling():
    from harness.predictions.calibration import reliability

    logits, labels = _overconfident(seed=3)
    raw = reliability(logits, labels)
    assert sum(b.count for b in raw) == len(labels)
    assert all(b.low <= b.confidence <= b.high for b in raw)
    t = fit_temperature(*_overconfident(seed=4))
    scaled = reliability(logits, labels, t)

    def gap(bins: list) -> float:  # the ECE read off the diagram
        return sum(b.count * abs(b.confidence - b.accuracy) for b in bins) / len(labels)

    assert abs(gap(raw) - ece(logits, labels)) < 0.01
    assert gap(scaled) < gap(raw) / 3
