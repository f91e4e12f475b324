"""A model zoo built here: pretrain a set of backbones by several methods on several sources, and
register each model (kind ``pretrain``, tags ``zoo=NAME`` and ``zoo_key``), so that ``select
--candidates zoo:NAME`` compares pretrained models offline the way it would compare ImageNet
weights online.

A spec (TOML, or :data:`DEFAULT`) lists groups of backbones, each group with one method and one source, and the
training settings shared by all. Building skips every entry whose model is already registered
(same zoo, same key: backbone, method, source and settings), and continues an interrupted one from
its checkpoint, so ``harness zoo build`` can always be run again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomllib

from registry import DataError, UsageError

if TYPE_CHECKING:
    from harness.context import Context

SMALL = ("cifar_convnet_xs", "cifar_resnet8", "cifar_convnet_s", "cifar_resnet20")
DEFAULT: dict[str, Any] = {
    "name": "default",
    "epochs": 2, "batch_size": 64, "lr": 0.05, "train_limit": 6000,
    "groups": [
        # labels of other classes: the first five Fashion-MNIST classes, for targets among the last five
        {"backbones": list(SMALL), "method": "supervised", "source": "fashion-mnist:classes=0-4"},
        # no labels at all: reconstruct the target's own training images
        {"backbones": list(SMALL), "method": "autoencoder", "source": "fashion-mnist:classes=5-9"},
        # a differently-built source: generated stripes
        {"backbones": list(SMALL), "method": "supervised", "source": "synthetic"},
        # no labels, contrastive (SimCLR): the README's transfer study measures its features against the others
        {"backbones": ["cifar_resnet8", "cifar_convnet_s"], "method": "contrastive",
         "source": "fashion-mnist:classes=5-9"},
    ],
}
SETTINGS = ("epochs", "batch_size", "lr", "train_limit", "input_size", "seed")
QUALITY_KEYS = ("val_accuracy", "val_pair_accuracy", "val_reconstruction_mse")
"""A zoo model's pretraining quality, by method: supervised, contrastive, autoencoder (lower is better)."""
TAG_ZOO, TAG_KEY = "zoo", "zoo_key"


@dataclass(frozen=True)
class ZooEntry:
    """One model of a zoo: a backbone pretrained by a method on a source with the shared settings."""

    zoo: str
    backbone: str
    method: str
    source: str
    settings: tuple[tuple[str, Any], ...]

    @property
    def key(self) -> str:
        raw = json.dumps([self.backbone, self.method, self.source, self.settings])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def read_spec(path: str | Path | None) -> dict[str, Any]:
    """The spec in ``path`` (TOML), or the default one."""
    if path is None:
        return DEFAULT
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read zoo spec {path}: {exc}") from None


def entries(spec: dict[str, Any]) -> list[ZooEntry]:
    """Every model the spec asks for, checked for shape (names are checked by :func:`check`)."""
    name = spec.get("name")
    groups = spec.get("groups")
    if not isinstance(name, str) or not name or not isinstance(groups, list) or not groups:
        raise UsageError("a zoo spec needs name = \"...\" and at least one [[groups]] with backbones, method and "
                         "source")
    settings = tuple((k, spec[k]) for k in SETTINGS if k in spec)
    found = []
    for group in groups:
        if not {"backbones", "method", "source"} <= set(group):
            raise UsageError(f"zoo {name}: each [[groups]] needs backbones = [...], method and source; got "
                             f"{', '.join(group)}")
        for backbone in group["backbones"]:
            found.append(ZooEntry(name, str(backbone), str(group["method"]), str(group["source"]), settings))
    return found


def check(ctx: Context, todo: list[ZooEntry]) -> None:
    """Refuse unknown backbones, methods and sources before any training."""
    from harness.data.views import register_view, split_view
    from harness.train.recipe import PRETRAIN_METHODS

    for entry in todo:
        ctx.catalogue.backbone(entry.backbone)
        if entry.method not in PRETRAIN_METHODS:
            raise UsageError(f"zoo {entry.zoo}: method {entry.method!r}; use one of {', '.join(PRETRAIN_METHODS)}")
        base, view = split_view(entry.source)
        if view is not None:
            register_view(ctx, base, view)
        elif base not in ctx.catalogue.datasets:
            ctx.catalogue.datasets.get(base)  # raises with suggestions


def built(ctx: Context, zoo: str) -> dict[str, Any]:
    """``{zoo_key: version}`` of what is already registered for ``zoo``."""
    return {v.tags[TAG_KEY]: v for v in ctx.store.list() if v.tags.get(TAG_ZOO) == zoo and TAG_KEY in v.tags}


def build(ctx: Context, spec: dict[str, Any], executor: Any = None) -> list[dict[str, Any]]:
    """Pretrain and register every entry not yet built; one row per entry. With a Ray
    ``executor`` the entries pretrain as Ray tasks and the driver registers them."""
    from harness.data.views import register_view, split_view
    from harness.train.pretrain import pretrain
    from harness.train.recipe import Recipe

    ctx.store.require_writable()
    todo = entries(spec)
    check(ctx, todo)
    done = built(ctx, todo[0].zoo)
    if executor is not None:
        return _build_elsewhere(ctx, todo, done, executor)
    rows = []
    for number, entry in enumerate(todo, 1):
        label = f"[{number}/{len(todo)}] {entry.backbone} {entry.method} on {entry.source}"
        if entry.key in done:
            rows.append(_row(entry, done[entry.key], "existing", 0.0))
            ctx.progress.info(f"{label}: already built as {done[entry.key].ref}")
            continue
        base, view = split_view(entry.source)
        dataset = register_view(ctx, base, view) if view else base
        recipe = Recipe(**dict(entry.settings), budget="pretrain", label_smoothing=0.0)
        ctx.progress.info(f"{label}: pretraining")
        started = time.perf_counter()
        result = pretrain(ctx, entry.backbone, dataset, entry.method, recipe, resume=True,
                          name=f"zoo-{entry.zoo}-{entry.backbone}-{entry.method}-{dataset}")
        version = ctx.store.set_tags(result.version.ref, {TAG_ZOO: entry.zoo, TAG_KEY: entry.key})
        rows.append(_row(entry, version, "built", time.perf_counter() - started))
    return rows


def _build_elsewhere(ctx: Context, todo: list[ZooEntry], done: dict[str, Any], executor: Any) -> list[dict[str, Any]]:
    """The entries not yet built pretrained by ``executor.pretrain_jobs``; rows in spec order."""
    from harness.data.views import register_view, split_view
    from harness.jobs.trial import PretrainSpec
    from harness.train.recipe import Recipe

    jobs, waiting = [], []
    context = ctx.spec().to_json()
    for number, entry in enumerate(todo, 1):
        if entry.key in done:
            continue
        base, view = split_view(entry.source)
        dataset = register_view(ctx, base, view) if view else base
        recipe = Recipe(**dict(entry.settings), budget="pretrain", label_smoothing=0.0)
        spec = PretrainSpec(context, base, (view.text(),) if view else (), entry.backbone, entry.method,
                            recipe.as_dict())
        label = f"[{number}/{len(todo)}] {entry.backbone} {entry.method} on {entry.source}"
        jobs.append((label, spec, f"zoo-{entry.zoo}-{entry.backbone}-{entry.method}-{dataset}"))
        waiting.append(entry)
        ctx.progress.info(f"{label}: pretraining on Ray")
    started = time.perf_counter()
    results = executor.pretrain_jobs(ctx, jobs) if jobs else []
    seconds = time.perf_counter() - started
    made, failed = {}, []
    for entry, result in zip(waiting, results, strict=True):
        if isinstance(result, BaseException):
            failed.append(f"{entry.backbone} {entry.method} on {entry.source}: {result}")
        else:
            made[entry.key] = ctx.store.set_tags(result.ref, {TAG_ZOO: entry.zoo, TAG_KEY: entry.key})
    if failed:
        raise DataError(f"{len(failed)} zoo model(s) failed ({failed[0]}); the others are registered: run "
                        "zoo build again to retry")
    return [_row(e, done[e.key], "existing", 0.0) if e.key in done else _row(e, made[e.key], "built", seconds)
            for e in todo]


def _row(entry: ZooEntry, version: Any, status: str, seconds: float) -> dict[str, Any]:
    summary = version.metrics.get("pretrain", {})
    quality = next((summary[k] for k in QUALITY_KEYS if summary.get(k) is not None), None)
    return {"model": version.ref, "backbone": entry.backbone, "method": entry.method, "source": entry.source,
            "status": status, "pretrain_quality": None if quality is None else round(float(quality), 4),
            "seconds": round(seconds, 1)}


def members(ctx: Context, zoo: str) -> list[str]:
    """The registry references of zoo ``zoo`` (what ``--candidates zoo:NAME`` expands to)."""
    found = sorted(v.ref for v in built(ctx, zoo).values())
    if not found:
        zoos = sorted({v.tags[TAG_ZOO] for v in ctx.store.list() if TAG_ZOO in v.tags})
        raise UsageError(f"no models in zoo {zoo!r} (zoos here: {', '.join(zoos) or 'none'}); build it with "
                         f"'harness zoo build'" + ("" if zoo == "default" else " --spec FILE"))
    return found
