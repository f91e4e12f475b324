"""Transferability prescreens: score candidates from frozen features, before any fine-tuning.

Features are extracted once per candidate (head removed) on a seeded sample of the training split
and scored by one method of :mod:`harness.select.transferability` (logme, knn, linear, sfda).
"""

from __future__ import annotations

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
from harness.select.config import PRESCREEN_SAMPLES
from harness.select.transferability import score
from registry import Task, first_line

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
            torch.manual_seed(seed)  # a model from scratch is scored at the initialisation its fine-tune starts from
            model = source.build(int(train.labels.max()) + 1)
            pre = resolve_preprocess(source, input_size)
            feats = extract_features(model, source.backbone.head, train.images, pre)
            scores[ref] = score(method, feats, train.labels.numpy())
            ctx.progress.info(f"  prescreen {method} {ref}: {scores[ref]:.4f}")
        except Exception as exc:  # one candidate's failure must not stop the others' prescreen
            ctx.progress.warn(f"prescreen of {ref} failed: {first_line(exc)}")
    return scores


def pretraining_score(ctx: Context, ref: str) -> float | None:
    """The free 'pretraining score' of a candidate: its source's validation accuracy (a registry
    pretrain version's, or a weight tag's published top-1 as a fraction); 0 for a model trained
    from scratch; None when its pretraining has no accuracy (an autoencoder)."""
    from registry import keys

    try:
        source = resolve_model(ctx, ref)
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
