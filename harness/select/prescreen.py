"""Transferability prescreens: score candidates from frozen features, before any fine-tuning.

Features are extracted once per candidate (head removed) on a seeded sample of the training split
and scored by one method of :mod:`harness.select.transferability` (logme, knn, linear, sfda, ncti;
NCTI scores each candidate relative to the others, so its scores are finished once all are measured).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from harness.data.loading import load_split
from harness.data.preprocess import Preprocess, resolve_preprocess, to_model_input
from harness.data.splits import subset
from harness.models.build import set_submodule
from harness.models.sources import ModelSource, resolve_model
from harness.select.config import PRESCREEN_SAMPLES
from harness.select.transferability import finish, measure
from registry import ImageSplit, Task, first_line

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


@dataclass(frozen=True)
class Extracted:
    """One candidate's frozen features on the prescreen's images, or why there are none."""

    ref: str
    features: np.ndarray | None
    params: int | None  # parameters of the model built for the task (the free 'parameter count' order)
    seconds: float      # building the model and extracting the features
    error: str | None = None


def prescreen_images(ctx: Context, task: Task, input_size: int, seed: int) -> ImageSplit:
    """The seeded sample of the task's training split every prescreen scores features on."""
    return subset(load_split(ctx, task.dataset, "train", image_size=input_size), PRESCREEN_SAMPLES, seed)


Resolver = Callable[[str], ModelSource]
"""A candidate reference to its resolved model (a selection's :meth:`Plan.model
<harness.select.stages.Plan.model>`, so that each candidate is resolved once)."""


def candidate_features(ctx: Context, refs: Sequence[str], train: ImageSplit, input_size: int,
                       seed: int, resolve: Resolver | None = None) -> Iterator[Extracted]:
    """Each candidate's features on ``train`` (head removed), one candidate at a time; a candidate
    that cannot be built or run yields its error instead, and the others go on."""
    for ref in refs:
        began = time.perf_counter()
        try:
            source = resolve(ref) if resolve else resolve_model(ctx, ref)
            torch.manual_seed(seed)  # a model from scratch is scored at the initialisation its fine-tune starts from
            model = source.build(int(train.labels.max()) + 1)
            params = sum(p.numel() for p in model.parameters())
            pre = resolve_preprocess(source, input_size)
            feats = extract_features(model, source.backbone.head, train.images, pre)
            yield Extracted(ref, feats, params, time.perf_counter() - began)
        except Exception as exc:  # one candidate's failure must not stop the others' prescreen
            yield Extracted(ref, None, None, time.perf_counter() - began, first_line(exc))


def prescreen_candidates(ctx: Context, task: Task, method: str, refs: Sequence[str], input_size: int,
                         seed: int, resolve: Resolver | None = None) -> dict[str, float]:
    """Score each candidate by ``method`` on frozen features of a seeded sample of the training split.

    A candidate whose features cannot be extracted is reported and left without a score.
    """
    train = prescreen_images(ctx, task, input_size, seed)
    labels = train.labels.numpy()
    measured: dict[str, Any] = {}
    for found in candidate_features(ctx, refs, train, input_size, seed, resolve):
        try:
            if found.features is None:
                raise RuntimeError(found.error)
            measured[found.ref] = measure(method, found.features, labels)
            ctx.progress.info(f"  prescreen {method} {found.ref}: {_text(measured[found.ref])}")
        except Exception as exc:  # one candidate's failure must not stop the others' prescreen
            ctx.progress.warn(f"prescreen of {found.ref} failed: {first_line(exc)}")
    scores = finish(method, measured)
    if method == "ncti":
        ctx.progress.info(f"  prescreen ncti (scaled over these {len(scores)}): "
                          + ", ".join(f"{ref} {value:.4f}" for ref, value in scores.items()))
    return scores


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return ", ".join(f"{k} {v:.4g}" for k, v in value.as_dict().items())


def pretraining_score(ctx: Context, ref: str, resolve: Resolver | None = None) -> float | None:
    """The free 'pretraining score' of a candidate: its source's validation accuracy (a registry
    pretrain version's, or a weight tag's published top-1 as a fraction); 0 for a model trained
    from scratch; None when its pretraining has no accuracy (an autoencoder)."""
    from registry import keys

    try:
        source = resolve(ref) if resolve else resolve_model(ctx, ref)
    except Exception:  # an unresolvable candidate already has a failed row; no baseline for it
        return None
    if source.version is not None:
        summary = source.version.metrics.get(keys.PRETRAIN, {})
        accuracy = summary.get("val_accuracy")
        return None if accuracy is None else float(accuracy)
    if source.tag is not None:
        top1 = source.tag.accuracy.get("top1") or source.tag.accuracy.get("acc@1")
        return None if top1 is None else float(top1) / (100.0 if float(top1) > 1 else 1.0)
    return 0.0 if not source.pretrained else None
