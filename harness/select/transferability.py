"""Transferability scores: how well frozen features fit a task's labels, higher is better.

Each takes features (n x d, float64) and integer labels (n,); a prescreen ranks candidates by it,
and :mod:`harness.select.rankcheck` measures how well that ranking predicted the fine-tuned one.
- ``logme``: LogME (You et al., ICML 2021), the log marginal evidence of a Bayesian linear model
  from features to one-hot labels, per sample, averaged over classes; computed as the authors'
  ``LogME.py`` does (raw features, whose mean acts as the intercept; the fixed-point update);
- ``knn``: leave-one-out k-nearest-neighbour accuracy (cosine, k=5);
- ``linear``: accuracy of a logistic-regression probe on a held-out fifth;
- ``sfda``: SFDA (Shao et al., ECCV 2022, "Not All Models Are Equal"): the mean probability of the
  true class under a regularised Fisher discriminant, fitted a second time after "ConfMix" pulls
  each sample toward the other classes' mean by how unsure the first fit was (the "self-challenge"
  that separates models whose classes are only barely separable);
- ``ncti``: NCTI (Wang et al., ICCV 2023), how close the features are to neural collapse on the
  target (see :mod:`harness.select.ncti`); unlike the others it ranks candidates *relative to each
  other* (each term is min-max scaled over the candidates), so it is computed for a set:
  :func:`measure` per candidate, then :func:`finish` over all of them.

Feature scale: LogME, knn and linear do not depend on it. SFDA and NCTI do, through the shrinkage
their authors set from the raw scatter (``exp(-5 * largest within-class eigenvalue)``, ``exp(-sum of
the 32 largest PCA variances)``); we keep the authors' raw-scale rule, because standardising lets a
discriminant fitted on as many dimensions as there are images look well separated even on random
features (README, "Prescreens: which to trust", has the figures).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import linalg
from torch import nn

from harness.select.config import PRESCREENS
from registry import UsageError

if TYPE_CHECKING:
    from harness.select.ncti import NctiParts

LOGME_STEPS, LOGME_TOL = 11, 1e-3
"""The authors' stopping rule: at most 11 fixed-point steps, stop when alpha/beta moves < 0.1%."""


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of raw ``features`` for one-hot ``labels``, averaged over classes (the authors'
    ``_fit_fixed_point``: no centring, the log-determinant over the non-zero singular values)."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = s > 1e-10
    u, sigma = u[:, keep], s[keep] ** 2
    evidences = []
    for k in range(int(labels.max()) + 1):
        y = (labels == k).astype(np.float64)
        x2 = (u.T @ y) ** 2
        res_x2 = float(y @ y - x2.sum())
        alpha, beta = 1.0, 1.0
        for _ in range(LOGME_STEPS):
            t = alpha / beta
            gamma = float((sigma / (sigma + t)).sum())
            m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
            res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + res_x2
            alpha, beta = gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) / t <= LOGME_TOL:
                break
        evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * np.log(alpha + beta * sigma).sum()
                    - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    f = torch.from_numpy(features).float()
    f = nn.functional.normalize(f - f.mean(0), dim=1)
    sim = f @ f.T
    sim.fill_diagonal_(-float("inf"))
    neighbours = sim.topk(min(k, len(f) - 1), dim=1).indices
    votes = torch.from_numpy(labels)[neighbours]
    preds = torch.mode(votes, dim=1).values
    return float((preds == torch.from_numpy(labels)).float().mean())


def linear_probe(features: np.ndarray, labels: np.ndarray, seed: int = 0, steps: int = 200) -> float:
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    order = torch.randperm(n, generator=g)
    cut = max(1, n // 5)
    val, train = order[:cut], order[cut:]
    f = torch.from_numpy(features).float()
    f = (f - f[train].mean(0)) / (f[train].std(0) + 1e-6)
    y = torch.from_numpy(labels)
    classes = int(y.max()) + 1
    torch.manual_seed(seed)
    probe = nn.Linear(f.shape[1], classes)
    opt = torch.optim.LBFGS(probe.parameters(), lr=0.5, max_iter=steps)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(probe(f[train]), y[train]) + 1e-3 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((probe(f[val]).argmax(1) == y[val]).float().mean())


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _shrunk(cov: np.ndarray, shrinkage: float) -> np.ndarray:
    """Shrinkage toward the mean-variance identity, as scikit-learn's ``shrunk_covariance``."""
    d = cov.shape[0]
    out = (1.0 - shrinkage) * cov
    out.flat[:: d + 1] += shrinkage * np.trace(cov) / d
    return out


def _solve(between: np.ndarray, within: np.ndarray) -> np.ndarray:
    """Generalised eigenvectors of (between, within), most discriminative first; a within-class
    scatter that is singular to working precision (dead features at the 1e-10 shrinkage floor)
    gets a jitter of 1e-12 of its mean variance."""
    try:
        evals, evecs = linalg.eigh(between, within)
    except linalg.LinAlgError:
        jitter = 1e-12 * max(float(np.trace(within)) / len(within), 1e-300)
        evals, evecs = linalg.eigh(between, within + jitter * np.eye(len(within)))
    return evecs[:, np.argsort(evals)[::-1]]


class FisherSpace:
    """Regularised Fisher discriminant (scikit-learn's ``eigen`` LDA solver, which SFDA's and NCTI's
    authors use). ``shrinkage`` None adapts it to the within-class scatter (SFDA's rule); 0 is the
    plain discriminant, which scikit-learn's ``svd`` solver computes too (1.9.1 here; before its
    PR #33626 that solver scaled the within-class scatter by n/(n-k))."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, shrinkage: float | None = None) -> None:
        classes, y = np.unique(labels, return_inverse=True)
        counts = np.bincount(y)
        priors = counts / len(y)
        means = np.zeros((len(classes), features.shape[1]))
        np.add.at(means, y, features)
        means /= counts[:, None]
        within = sum(p * np.atleast_2d(np.cov(features[y == c].T, bias=True)) for c, p in enumerate(priors))
        if shrinkage is None:  # strong scatter -> little shrinkage, as the paper's exp(-5 * lambda_max)
            shrinkage = max(math.exp(-5.0 * float(np.linalg.eigvalsh(within)[-1])), 1e-10)
        self.shrinkage = shrinkage
        total = np.atleast_2d(np.cov(features.T, bias=True))
        sw = _shrunk(within, shrinkage)
        sb = _shrunk(total, shrinkage) - sw
        evecs = _solve(sb, sw)
        self.scalings = evecs
        self.coef = means @ evecs @ evecs.T
        self.intercept = -0.5 * np.einsum("ij,ij->i", means, self.coef) + np.log(priors)
        self.y = y
        self.means = means

    def proba(self, features: np.ndarray) -> np.ndarray:
        return softmax(features @ self.coef.T + self.intercept)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """The features in the discriminant space (k-1 dimensions for k classes)."""
        return features @ self.scalings[:, : max(len(self.means) - 1, 1)]


def sfda(features: np.ndarray, labels: np.ndarray) -> float:
    x = np.array(features, dtype=np.float64)
    first = FisherSpace(x, labels)
    y = first.y
    sure = softmax(first.proba(x))[np.arange(len(y)), y][:, None]  # softened, as in the paper
    k = len(first.means)
    others = (first.means.sum(0, keepdims=True) - first.means) / max(k - 1, 1)
    mixed = sure * x + (1.0 - sure) * others[y]
    second = FisherSpace(mixed, labels, shrinkage=first.shrinkage)
    return float(second.proba(mixed)[np.arange(len(y)), y].mean())


def measure(method: str, features: np.ndarray, labels: np.ndarray) -> float | NctiParts:
    """What ``method`` measures on one candidate's features: its score, or (NCTI) the parts that
    :func:`finish` scales over all candidates."""
    if method == "ncti":
        from harness.select.ncti import ncti_parts

        return ncti_parts(features, labels)
    return transfer_score(method, features, labels)


def finish(method: str, measured: Mapping[str, Any]) -> dict[str, float]:
    """Each candidate's score from what :func:`measure` found for it (NCTI: relative to the others)."""
    if method == "ncti":
        from harness.select.ncti import ncti_scores

        return ncti_scores(measured)
    return {ref: float(value) for ref, value in measured.items()}


def score_set(method: str, features: Mapping[str, np.ndarray], labels: np.ndarray) -> dict[str, float]:
    """The score of every candidate in ``features`` (candidate -> n x d) for the same ``labels``."""
    return finish(method, {ref: measure(method, f, labels) for ref, f in features.items()})


def transfer_score(method: str, features: np.ndarray, labels: np.ndarray) -> float:
    """The transferability score ``method`` (one of PRESCREENS but ncti) of ``features`` for ``labels``."""
    if method == "logme":
        return logme(features, labels)
    if method == "knn":
        return knn_accuracy(features, labels)
    if method == "linear":
        return linear_probe(features, labels)
    if method == "sfda":
        return sfda(features, labels)
    if method == "ncti":
        raise UsageError("ncti scores candidates relative to each other: use score_set (or measure, then finish)")
    raise UsageError(f"unknown {{param}} {method!r}; use {', '.join(PRESCREENS)}", param="prescreen")
