"""Transfer-learning strategies: which parameters train, and at which learning rate.

- ``linear``: freeze the backbone, train a new head (a linear probe); frozen BatchNorm layers keep
  their running statistics (they run in eval mode).
- ``partial``: also unfreeze the last N *blocks*. Blocks are found generically: start from the
  model's top-level children (less the one holding the head) and, while one child holds most of
  the parameters and is itself a container, replace it by its children. That yields ResNet's
  residual blocks, ViT's encoder layers and MobileNet's inverted-residual blocks alike.
- ``full``: everything trains; the backbone at ``lr * backbone_lr_mult``, the head at ``lr``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from harness.train.recipe import STRATEGIES
from registry import UsageError


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def head_container(model: nn.Module, head: str) -> nn.Module:
    """The top-level child that holds the head (``classifier`` for ``classifier.1``)."""
    return model.get_submodule(head.split(".")[0])


def blocks(model: nn.Module, head: str) -> list[nn.Module]:
    """The backbone's blocks in forward order (see the module docstring)."""
    top = head_container(model, head)
    items = [m for m in model.children() if m is not top and _has_params(m)]
    for _ in range(10):
        if not items:
            break
        total = sum(_count(m) for m in items)
        largest = max(items, key=_count)
        children = [c for c in largest.children() if _has_params(c)]
        if _count(largest) * 2 <= total or len(children) < 2:
            break
        i = items.index(largest)
        items = items[:i] + children + items[i + 1:]
    return items


def apply_strategy(model: nn.Module, head: str, strategy: str, partial_blocks: int = 1) -> list[nn.Module]:
    """Set ``requires_grad``; returns the frozen modules (to be kept in eval mode)."""
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown {{param}} {strategy!r}; use one of {', '.join(STRATEGIES)}", param="strategy")
    for p in model.parameters():
        p.requires_grad_(strategy == "full")
    if strategy == "full":
        return []
    for p in head_container(model, head).parameters():
        p.requires_grad_(True)
    trainable_blocks = blocks(model, head)[-partial_blocks:] if strategy == "partial" and partial_blocks > 0 else []
    for block in trainable_blocks:
        for p in block.parameters():
            p.requires_grad_(True)
    return [m for m in model.modules() if _has_params(m) and not any(p.requires_grad for p in m.parameters())]


def param_groups(model: nn.Module, head: str, lr: float, backbone_lr_mult: float,
                 weight_decay: float) -> list[dict[str, Any]]:
    """Head at ``lr``, the rest at ``lr * backbone_lr_mult``; no weight decay on norms and biases."""
    head_ids = {id(p) for p in head_container(model, head).parameters()}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        is_head = id(p) in head_ids
        decay = p.ndim > 1
        groups.setdefault((is_head, decay), []).append(p)
    result = []
    for (is_head, decay), params in sorted(groups.items()):
        result.append({"params": params, "lr": lr if is_head else lr * backbone_lr_mult,
                       "weight_decay": weight_decay if decay else 0.0})
    return result
