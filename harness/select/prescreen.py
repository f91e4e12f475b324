"""Transferability prescreens: score candidates from frozen features, before any fine-tuning.

Features are extracted once per candidate (head removed) on a seeded sample of the training split.
- ``logme``: LogME (You et al., ICML 2021), the log marginal evidence of a Bayesian linear model
  from features to one-hot labels, per sample, averaged over classes;
- ``knn``: leave-one-out k-nearest-neighbour accuracy (cosine, k=5);
- ``linear``: accuracy of a logistic-regression probe on a held-out fifth.
Higher is better for all three.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from harness.data.loading import load_split
from harness.data.preprocess import Preprocess, resolve_preprocess, to_model_input
from harness.data.splits import subset
from harness.models.build import set_submodule
from harness.models.sources import resolve_model
from harness.select.config import PRESCREEN_SAMPLES, PRESCREENS
from registry import Task, UsageError, first_line

if TYPE_CHECKING:
    from harness.context import Context


@torch.no_grad()
def extract_features(model: nn.Module, head: str, images: torch.Tensor, pre: Preprocess,
                     batch_size: int = 256) -> np.ndarray:
    set_submodule(model, head, nn.Identity())
    model.eval()
    feats = [torch.flatten(model(to_model_input(images[i:i + batch_size], pre)), 1).float()
             for i in range(0, len(images), batch_size)]
    return torch.cat(feats).numpy().astype(np.float64)


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


def score(method: str, features: np.ndarray, labels: np.ndarray) -> float:
    if method == "logme":
        return logme(features, labels)
    if method == "knn":
        return knn_accuracy(features, labels)
    if method == "linear":
        return linear_probe(features, labels)
    raise UsageError(f"unknown {{param}} {method!r}; use {', '.join(PRESCREENS)}", param="prescreen")


def prescreen_candidates(ctx: Context, task: Task, method: str, refs: Sequence[str], input_size: int,
                         seed: int) -> dict[str, float]:
    """Score each candidate by ``method`` on frozen features of a seeded sample of the training split.

    A candidate whose features cannot be extracted is reported and left without a score.
    """
    train = subset(load_split(ctx, task.dataset, "train", image_size=input_size), PRESCREEN_SAMPLES, seed)
    scores: dict[str, float] = {}
    for ref in refs:
        try:
            source = resolve_model(ctx, ref)
            model = source.build(int(train.labels.max()) + 1)
            pre = resolve_preprocess(source, input_size)
            feats = extract_features(model, source.backbone.head, train.images, pre)
            scores[ref] = score(method, feats, train.labels.numpy())
            ctx.progress.info(f"  prescreen {method} {ref}: {scores[ref]:.4f}")
        except Exception as exc:  # one candidate's failure must not stop the others' prescreen
            ctx.progress.warn(f"prescreen of {ref} failed: {first_line(exc)}")
    return scores
