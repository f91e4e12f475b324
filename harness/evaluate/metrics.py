"""Calling a plugin's quality metric safely: its failures are the plugin's, named as such, and a
value that is not a finite number is never passed on as a score.

A metric runs after training, so an exception there must not lose the trained model: the callers
record the failure next to the scores that worked (``Evaluation.failed``) and register the model;
:func:`preflight` calls every metric once on made-up logits before any training starts, so a metric
that always raises is reported before minutes are spent.
"""

from __future__ import annotations

import math
from typing import Any

from registry import Catalogue, HarnessError, Metric, PluginError, Task


def _who(metric: Metric) -> str:
    return f"metric {metric.name!r} ({metric.plugin or 'no plugin'})"


def compute(metric: Metric, logits: Any, labels: Any, num_classes: int) -> float:
    """``metric`` on these logits as a finite float; a :class:`PluginError` naming the metric and its
    plugin when it raises, returns something that is not a number, or returns NaN or an infinity."""
    try:
        value = metric.compute(logits, labels, num_classes)
        number = float(value)
    except HarnessError:
        raise
    except Exception as exc:
        raise PluginError(f"{_who(metric)} raised {type(exc).__name__}: {str(exc).strip()[:200]}") from None
    if not math.isfinite(number):
        raise PluginError(f"{_who(metric)} returned {number} (not a finite number)")
    return number


def score_all(catalogue: Catalogue, task: Task, logits: Any, labels: Any,
              num_classes: int) -> tuple[dict[str, float], dict[str, str]]:
    """Every quality metric of ``task``: (scores that worked, ``{name: why}`` for the ones that did not)."""
    scores: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name in task.metrics:
        metric = catalogue.metrics.get(name)
        if metric.kind != "quality":
            continue
        try:
            scores[name] = round(compute(metric, logits, labels, num_classes), 6)
        except PluginError as exc:
            failed[name] = str(exc)
    return scores, failed


def preflight(catalogue: Catalogue, task: Task, num_classes: int) -> None:
    """Call each quality metric of ``task`` on random logits for every class; one that raises (or
    returns something that is not a number) is a :class:`PluginError` before any work starts. NaN is
    let through here: a metric may be undefined on made-up data and fine on real data."""
    import torch

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(2 * num_classes) % num_classes
    logits = torch.randn(labels.shape[0], num_classes, generator=generator)
    for name in task.metrics:
        metric = catalogue.metrics.get(name)
        if metric.kind != "quality":
            continue
        try:
            compute(metric, logits, labels, num_classes)
        except PluginError as exc:
            if "not a finite number" in str(exc):
                continue
            raise PluginError(f"task {task.name!r}: {exc} on a test batch of random logits; nothing was "
                              "trained. Fix the metric in its plugin, or uninstall the plugin") from None


def metric_scorer(metric: Metric) -> Any:
    """A ``scorer(logits, labels) -> float`` over numpy arrays for paired comparisons
    (:mod:`harness.evaluate.paired`), or None for top-1 accuracy: the exact, fast path."""
    if metric.name == "accuracy":
        return None

    def scorer(logits: Any, labels: Any) -> float:
        import torch

        return compute(metric, torch.from_numpy(logits), torch.from_numpy(labels), logits.shape[1])

    return scorer
