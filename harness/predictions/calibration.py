"""Calibration: how far a model's confidence is from its accuracy, and one number that repairs most of it.

Expected calibration error (ECE) is computed here as the ``ece`` metric plugin does (15 equal-width
bins of the top-1 confidence, L1), in numpy, so it runs on stored predictions without torch.
Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017) divides
the logits by one scalar T fitted on *validation* by minimising the negative log-likelihood; it
never changes which class wins (accuracy is unchanged), only how sure the model says it is. It is
fitted on validation and reported on test, like every choice in harness. T is found by a
golden-section search over log T in [-3, 3] (T from 0.05 to 20): the NLL is convex in 1/T, so
one-dimensional search is exact enough and needs no optimiser.

The fitted :class:`Calibration` is recorded with the version (``metrics["calibration"]``, by
select's ``calibrate`` stage or the first export) so that one number is what the leaderboard's
``ece_scaled`` and ``temperature`` columns, the card, the gate's ``--max-ece`` and the ONNX file's
``temperature`` metadata all show. T goes into the file's metadata rather than into its graph: the
file keeps PyTorch's logits (parity checks them, INT8 calibrates on them, argmax is unchanged, and a
consumer who wants raw scores still has them), and ``softmax(logits / temperature)`` is one line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BINS = 15


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def ece(logits: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error of top-1 confidence, ``bins`` equal-width bins, L1."""
    probs = _softmax(np.asarray(logits, dtype=np.float64))
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    right = (predicted == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges, confidence, side="right") - 1  # as torchmetrics bins (1.0 alone at the top)
    total = 0.0
    for b in range(bins + 1):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(confidence[mask].mean() - right[mask].mean())
    return float(total)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(log_norm - shifted[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 60) -> float:
    """The temperature minimising the NLL of ``labels`` (golden-section search over log T)."""
    low, high = -3.0, 3.0
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(steps):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(logits, labels, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((low + high) / 2))


@dataclass(frozen=True)
class Calibration:
    """A temperature fitted on validation, and test ECE and NLL before and after it."""

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    fitted_on: str  # the validation image set's text
    reported_on: str  # the test image set's text

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def calibrate(val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray, test_labels: np.ndarray,
              fitted_on: str = "val", reported_on: str = "test") -> Calibration:
    """Fit T on validation; ECE and NLL on test before and after dividing the logits by T."""
    t = fit_temperature(val_logits, val_labels)
    return Calibration(t, ece(test_logits, test_labels), ece(test_logits / t, test_labels),
                       nll(test_logits, test_labels), nll(test_logits, test_labels, t), fitted_on, reported_on)


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin of a reliability diagram: its edges, how many images fell in it, their
    mean top-1 confidence and their accuracy (a calibrated model has the two equal)."""

    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


def reliability(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
                bins: int = BINS) -> list[ReliabilityBin]:
    """The non-empty bins of ``softmax(logits / temperature)``'s top-1 confidence (as :func:`ece` bins)."""
    probs = _softmax(np.asarray(logits, dtype=np.float64) / temperature)
    confidence, right = probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.minimum(np.searchsorted(edges, confidence, side="right") - 1, bins - 1)
    return [ReliabilityBin(float(edges[b]), float(edges[b + 1]), int(mask.sum()), float(confidence[mask].mean()),
                           float(right[mask].mean()))
            for b in range(bins) if (mask := which == b).any()]


def from_version(version: Any) -> Calibration | None:
    """The :class:`Calibration` of a registry version from its stored predictions (None when it
    has none on both validation and test)."""
    from harness.predictions.stored import load_predictions

    stored = load_predictions(version)
    if "val" not in stored or "test" not in stored:
        return None
    val, test = stored["val"], stored["test"]
    return calibrate(val.logits.astype(np.float64), val.labels, test.logits.astype(np.float64), test.labels,
                     val.evalset.text(), test.evalset.text())


def stored_calibration(version: Any) -> Calibration | None:
    """The calibration recorded with ``version`` (None when never recorded)."""
    from registry import keys

    data = version.metrics.get(keys.CALIBRATION)
    return Calibration(**data) if data else None


def ensure_calibration(ctx: Any, version: Any, *, record: bool = True) -> Calibration | None:
    """The version's calibration: the recorded one, else fitted now from its stored predictions
    (and, with ``record``, recorded under ``metrics["calibration"]``, so the temperature that goes
    into its ONNX file, its card and its leaderboard row is one number). None without predictions."""
    from registry import keys

    found = stored_calibration(version)
    if found is not None:
        return found
    fitted = from_version(version)
    if fitted is None:
        return None
    rounded = Calibration(**fitted.as_dict())  # what the store keeps (4 decimals) is what every reader sees
    if record:
        ctx.store.update_metrics(version.ref, {keys.CALIBRATION: rounded.as_dict()})
    return rounded
