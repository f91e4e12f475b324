"""Transferability scores: how well frozen features fit a task's labels, higher is better.

Each takes features (n x d, float64) and integer labels (n,) and returns one number; a prescreen
ranks candidates by it, and :mod:`harness.select.rankcheck` measures how well that ranking
predicted the fine-tuned one.
- ``logme``: LogME (You et al., ICML 2021), the log marginal evidence of a Bayesian linear model
  from features to one-hot labels, per sample, averaged over classes;
- ``knn``: leave-one-out k-nearest-neighbour accuracy (cosine, k=5);
- ``linear``: accuracy of a logistic-regression probe on a held-out fifth;
- ``sfda``: SFDA (Shao et al., ECCV 2022, "Not All Models Are Equal"): the mean probability of the
  true class under a regularised Fisher discriminant, fitted a second time after "ConfMix" pulls
  each sample toward the other classes' mean by how unsure the first fit was (the "self-challenge"
  that separates models whose classes are only barely separable).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import linalg
from torch import nn

from harness.select.config import PRESCREENS
from registry import UsageError


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    f = features - features.mean(0, keepdims=True)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = np.zeros(d)
    sigma[: len(s)] = s ** 2
    sig = s ** 2
    evidences = []
    for k in np.unique(labels):
        y = (labels == k).astype(np.float64)
        x = u.T @ y
        x2 = x ** 2
        res_x2 = max(float(y @ y - x2.sum()), 0.0)
        alpha, beta = 1.0, 1.0
        for _ in range(100):
            gamma = float((beta * sig / (alpha + beta * sig)).sum())
            m2 = float((beta ** 2 * sig * x2 / (alpha + beta * sig) ** 2).sum())
            res2 = float((x2 * (alpha / (alpha + beta * sig)) ** 2).sum()) + res_x2
            new_alpha, new_beta = gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)
            done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 1e-4
            alpha, beta = new_alpha, new_beta
            if done:
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


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _shrunk(cov: np.ndarray, shrinkage: float) -> np.ndarray:
    """Ledoit-Wolf style shrinkage toward the mean-variance identity (keeps Sw invertible)."""
    d = cov.shape[0]
    out = (1.0 - shrinkage) * cov
    out.flat[:: d + 1] += shrinkage * np.trace(cov) / d + 1e-9
    return out


class FisherSpace:
    """Regularised Fisher discriminant whose shrinkage adapts to the within-class scatter."""

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
        sw = _shrunk(within, shrinkage)
        sb = _shrunk(np.atleast_2d(np.cov(features.T, bias=True)), shrinkage) - sw
        evals, evecs = linalg.eigh(sb, sw)
        evecs = evecs[:, np.argsort(evals)[::-1]]
        self.coef = means @ evecs @ evecs.T
        self.intercept = -0.5 * np.einsum("ij,ij->i", means, self.coef) + np.log(priors)
        self.y = y
        self.means = means

    def proba(self, features: np.ndarray) -> np.ndarray:
        return _softmax(features @ self.coef.T + self.intercept)


def sfda(features: np.ndarray, labels: np.ndarray) -> float:
    x = np.array(features, dtype=np.float64)
    first = FisherSpace(x, labels)
    y = first.y
    sure = _softmax(first.proba(x))[np.arange(len(y)), y][:, None]  # softened, as in the paper
    k = len(first.means)
    others = (first.means.sum(0, keepdims=True) - first.means) / max(k - 1, 1)
    mixed = sure * x + (1.0 - sure) * others[y]
    second = FisherSpace(mixed, labels, shrinkage=first.shrinkage)
    return float(second.proba(mixed)[np.arange(len(y)), y].mean())


def score(method: str, features: np.ndarray, labels: np.ndarray) -> float:
    """The transferability score ``method`` (one of PRESCREENS) of ``features`` for ``labels``."""
    if method == "logme":
        return logme(features, labels)
    if method == "knn":
        return knn_accuracy(features, labels)
    if method == "linear":
        return linear_probe(features, labels)
    if method == "sfda":
        return sfda(features, labels)
    raise UsageError(f"unknown {{param}} {method!r}; use {', '.join(PRESCREENS)}", param="prescreen")
