"""Rows and records describing catalogue entries: what ``harness list`` and ``harness show`` print.

Library first: these return plain dicts, so a notebook or another tool gets the same data as the
CLI's ``--format json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from registry import Backbone, Catalogue, Dataset, Metric, Task, WeightTag, to_dict


def _plugin(entry: Any) -> str | None:
    return entry.plugin.distribution or entry.plugin.name if entry.plugin else None


def backbone_row(b: Backbone) -> dict[str, Any]:
    default = b.tag(b.default_tag) if b.default_tag else None
    return {
        "name": b.name,
        "family": b.family,
        "tags": [w.tag for w in b.weights],
        "default_tag": b.default_tag,
        "input_size": b.input_size,
        "params_m": round(default.num_params / 1e6, 2) if default and default.num_params else None,
        "gflops": round(default.flops / 1e9, 3) if default and default.flops else None,
        "imagenet_top1": default.accuracy.get("imagenet_top1") if default else None,
        "plugin": _plugin(b),
    }


def weight_row(b: Backbone, w: WeightTag) -> dict[str, Any]:
    from harness.models import weights_cache_path

    path = weights_cache_path(w)
    return {
        "name": f"{b.name}.{w.tag}",
        "dataset": w.dataset,
        "input_size": w.input_size,
        "params_m": round(w.num_params / 1e6, 2) if w.num_params else None,
        "gflops": round(w.flops / 1e9, 3) if w.flops else None,
        "top1": w.accuracy.get("imagenet_top1"),
        "cached": bool(path and path.is_file()),
        "license": w.license,
    }


def dataset_row(d: Dataset) -> dict[str, Any]:
    return {"name": d.name, "classes": d.num_classes, "splits": list(d.splits),
            "image_size": d.image_size, "channels": d.channels, "license": d.license,
            "plugin": _plugin(d)}


def metric_row(m: Metric) -> dict[str, Any]:
    return {"name": m.name, "kind": m.kind, "higher_is_better": m.higher_is_better, "unit": m.unit,
            "description": m.description, "plugin": _plugin(m)}


def budget_record(t: Task, budget: str) -> dict[str, Any]:
    """What ``select --budget BUDGET`` will actually run on ``t``: the budget's own size, candidates
    and limits where it sets them, the protocol's otherwise (a quick budget often trains fewer,
    smaller nets at a smaller size than the task's input size)."""
    b = t.protocol.budgets[budget]
    return {"epochs": b.epochs, "batch_size": b.batch_size, "lr": b.lr,
            "input_size": b.input_size or t.protocol.input_size,
            "augmentation": list(b.augmentation if b.augmentation is not None else t.protocol.augmentation),
            "train_limit": b.train_limit, "test_limit": b.test_limit, "halving_epochs": b.halving_epochs,
            "candidates": list(t.protocol.candidates_for(budget))}


def budget_line(record: dict[str, Any]) -> str:
    """One budget in words: ``4 candidates x 3 epochs at 28px, batch 64, at most 12,000 training images``."""
    limits = "".join([f", at most {record['train_limit']:,} training images" if record["train_limit"] else "",
                      f", at most {record['test_limit']:,} test images" if record["test_limit"] else ""])
    n, halving = len(record["candidates"]), record.get("halving_epochs")
    how = (f"{n} candidates by successive halving to {halving} epochs (finetune: {record['epochs']})" if halving
           else f"{n} candidates x {record['epochs']} epochs")
    return (f"{how} at {record['input_size']}px, batch {record['batch_size']}{limits}: "
            f"{', '.join(record['candidates'])}")


def task_row(t: Task) -> dict[str, Any]:
    budgets = {name: budget_record(t, name) for name in t.protocol.budgets}

    def short(name: str) -> str | None:
        b = budgets.get(name)
        if not b:
            return None
        epochs = f"halving to {b['halving_epochs']} ep" if b.get("halving_epochs") else f"{b['epochs']} ep"
        return f"{len(b['candidates'])} nets x {epochs} at {b['input_size']}px"

    return {"name": t.name, "dataset": t.dataset, "primary_metric": t.primary_metric,
            "metrics": list(t.metrics), "input_size": t.protocol.input_size, "quick": short("quick"),
            "standard": short("standard"), "candidates": list(t.protocol.candidates), "plugin": _plugin(t),
            "budgets": budgets}


# Keyed by kind; each takes that kind's entry (Any: the four entry classes share no base).
ROWS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "backbone": backbone_row, "dataset": dataset_row, "metric": metric_row, "task": task_row}


def list_entries(catalogue: Catalogue, kind: str, pattern: str | None = None,
                 tags: bool = False) -> list[dict[str, Any]]:
    """One row per entry of ``kind`` matching ``pattern``; for backbones with ``tags`` (or a
    pattern containing a dot, like ``*.tv_in1k``) one row per weight tag."""
    table = catalogue.table(kind)
    singular = table.kind
    if singular == "backbone" and (tags or (pattern and "." in pattern)):
        pairs = catalogue.list_weights(pattern if pattern and "." in pattern else f"{pattern or '*'}.*")
        return [weight_row(b, w) for b, w in pairs]
    return [ROWS[singular](e) for e in table.list(pattern)]


def describe(catalogue: Catalogue, name: str, kind: str | None = None,
             measure: bool = True) -> list[dict[str, Any]]:
    """Everything known about ``name`` (all kinds that have it, or only ``kind``)."""
    if kind:
        table = catalogue.table(kind)
        lookup = name.partition(".")[0] if table.kind == "backbone" else name
        found = [(table.kind, table.get(lookup))]
    else:
        found = catalogue.find(name)
    records = []
    for entry_kind, entry in found:
        record: dict[str, Any] = {"kind": entry_kind, **to_dict(entry)}
        if entry_kind == "metric":  # its own ``kind`` (quality/efficiency) must not hide that it is a metric
            record = metric_record(catalogue, entry)
        if entry_kind == "task":  # what each budget will run, in words and as data
            record["budgets"] = {name: budget_line(budget_record(entry, name)) for name in entry.protocol.budgets}
        if entry_kind == "backbone":
            _, tag = catalogue.backbone(name)
            if tag is not None:
                record["weights"] = [to_dict(tag)]
                record["selected_tag"] = tag.tag
            if measure:
                record["measured"] = measure_backbone(entry, tag)
            else:  # published figures (the weights' metadata) are above; building is asked for
                record["measured"] = f"not measured: harness show {name} --measure builds it to count params and FLOPs"
        records.append(record)
    return records


METRIC_MEASURES = {"quality": "quality: computed over a split from the model's logits and the labels",
                   "efficiency": "efficiency: computed from the model itself and one example input"}


def metric_record(catalogue: Catalogue, m: Metric) -> dict[str, Any]:
    """What ``show METRIC`` prints: what it measures, which way is better, and the tasks it ranks."""
    tasks = [t for t in catalogue.tasks if m.name in t.metrics]
    return {"kind": "metric", "name": m.name, "description": m.description or None,
            "measures": METRIC_MEASURES[m.kind], "metric_kind": m.kind,
            "better": f"{'higher' if m.higher_is_better else 'lower'} is better",
            "higher_is_better": m.higher_is_better, "unit": m.unit,
            "primary_of": [t.name for t in tasks if t.primary_metric == m.name],
            "reported_by": [t.name for t in tasks if t.primary_metric != m.name],
            "plugin": to_dict(m.plugin) if m.plugin else None}


def measure_backbone(b: Backbone, tag: WeightTag | None = None) -> dict[str, Any]:
    """Params, feature width and FLOPs (2 per multiply-add) of a randomly initialised build."""
    import torch

    from harness.models import count_flops, count_params, head_in_features
    from harness.models.build import call_builder, head_of

    size = (tag.input_size if tag and tag.input_size else None) or b.input_size
    classes = (tag.num_classes if tag and tag.num_classes else None) or 1000
    try:
        with torch.device("meta"):
            model = b.builder(classes, None)
    except Exception:  # some builders compute with real tensors; a broken one fails again, named
        model = call_builder(b, classes, None)
    model.eval()
    return {
        "num_classes": classes,
        "params": count_params(model),
        "feature_dim": head_in_features(head_of(b, model)),
        "input_size": size,
        "flops": count_flops(model, size, b.channels),
        "flops_unit": "FLOPs, 2 per multiply-add, batch 1",
    }
