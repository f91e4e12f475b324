"""Resolve a MODEL argument: a backbone[.tag], a registry reference, or a weights file path.

Order: an existing file path; then a catalogue backbone (``resnet18``, ``resnet18.tv_in1k``);
then a store reference (``name``, ``name@3``, ``name:alias``). The answer says which backbone to
build, where its weights come from and which registry version (if any) it descends from.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.models.weights import check_metadata, damaged_metadata, read_metadata, save_weights
from registry import Backbone, DataError, UnknownNameError, UsageError, WeightTag, keys
from registry.store import ModelVersion

if TYPE_CHECKING:
    from torch import nn

    from harness.context import Context


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from."""

    ref: str
    backbone: Backbone
    tag: WeightTag | None = None
    weights_file: Path | None = None
    version: ModelVersion | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int | None:
        if self.version is not None:
            return self.version.num_classes
        return self.metadata.get("num_classes")

    @property
    def preprocess(self) -> dict[str, Any] | None:
        if self.version is not None:
            return self.version.recipe.get("preprocess")
        return self.metadata.get("preprocess")

    @property
    def class_names(self) -> tuple[str, ...] | None:
        if self.version is not None:
            return self.version.class_names
        names = self.metadata.get("class_names")
        return tuple(names) if names else None

    @property
    def pretrained(self) -> bool:
        """Whether the model starts from learned weights rather than random initialisation."""
        return self.tag is not None or self.weights_file is not None

    @property
    def label(self) -> str:
        """``name@v`` for a registry version, else the reference as given."""
        return self.version.ref if self.version is not None else self.ref

    def output_classes(self) -> int:
        """The width of the head this source's weights carry (1000 for ImageNet tags)."""
        return self.num_classes or (self.tag.num_classes if self.tag else None) or 1000

    def build(self, num_classes: int | None = None) -> nn.Module:
        """The model, with a head of ``num_classes`` (default: the weights' own width)."""
        from harness.models.build import build_backbone

        if self.version is not None and self.weights_file is not None and not self.weights_file.is_file():
            raise DataError(f"the weights of {self.version.ref} are gone from the store ({self.weights_file}): was it "
                            "removed meanwhile? 'harness registry list' shows what is there")
        return build_backbone(self.backbone, self.tag, num_classes or self.output_classes(), self.weights_file)


_CHECKED: dict[tuple[str, int, int, str], int] = {}  # (path, size, mtime, backbone) of files checked once: classes


def _check_weights_file(path: Path, backbone: Backbone) -> int:
    """Read a weights file once (safely) when it is named and build ``backbone`` to match it, so a
    damaged file, one that is not a state dict of tensors, or one of another architecture is
    refused before data loads and a plan is printed, not when training builds the model later.
    Returns the width of the file's head (its class count)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, backbone.name)
    if key not in _CHECKED:
        from harness.models.build import fitted_model

        _model, state = fitted_model(backbone, path)
        _CHECKED[key] = int(state[f"{backbone.head}.weight"].shape[0])
    return _CHECKED[key]


def resolve_model(ctx: Context, ref: str, backbone: str | None = None) -> ModelSource:
    """Turn a MODEL argument into a :class:`ModelSource` (see the module docstring).

    ``backbone`` names the architecture of a weights file that does not say it itself.
    """
    catalogue = ctx.catalogue
    path = Path(ref).expanduser()
    if path.suffix in (".safetensors", ".pth", ".pt") or path.is_file():
        if not path.is_file():
            raise UsageError(f"weights file {ref!r} does not exist")
        meta = read_metadata(path) if path.suffix == ".safetensors" else {}
        recorded = meta.get("backbone")
        if not backbone and recorded is not None and (not isinstance(recorded, str) or not recorded):
            raise damaged_metadata(path, f"backbone is {recorded!r}, not a backbone name")
        name = backbone or recorded
        if not name:
            raise UsageError(f"{ref} does not say which backbone it holds; pass {{param}} NAME to finetune or "
                             f"evaluate, or register it first: harness registry import BACKBONE {ref}",
                             param="backbone")
        entry = catalogue.backbones.get(name)
        classes = _check_weights_file(path, entry)
        check_metadata(path, meta, backbone=entry.name, channels=entry.channels, head_classes=classes)
        return ModelSource(ref, entry, weights_file=path, metadata=meta)
    base = ref.partition(".")[0]
    if "@" not in ref and ":" not in ref and base in catalogue.backbones:
        entry, tag = catalogue.backbone(ref)
        return ModelSource(ref, entry, tag=tag)
    store = ctx.store
    try:
        version = store.get(ref)
    except UnknownNameError as exc:
        if "@" in ref or ":" in ref:
            raise
        catalogue.backbones.check_available(base)  # a zoo whose library is missing: its install hint
        known = catalogue.backbones.names() + store.names()
        raise UnknownNameError("model", ref, known,
                               hint="give a backbone (harness list backbones), a registry model "
                                    "(harness registry list) or a weights file") from exc
    weights = version.artifacts.get(keys.ROLE_WEIGHTS)
    if weights is None:
        raise UsageError(f"{version.ref} has no weights artifact")
    if not store.blobs.verify(weights.sha256):
        raise DataError(f"the weights of {version.ref} are missing or do not match their sha256 "
                        f"({weights.path}); run 'harness registry check'")
    return ModelSource(ref, catalogue.backbones.get(version.backbone), weights_file=weights.path, version=version)


def pretrained_version(ctx: Context, source: ModelSource) -> ModelVersion | None:
    """Register a catalogue weight tag or a weights file as a store version (once per distinct
    file), so a model fine-tuned from it has a parent."""
    if source.weights_file is not None and source.version is None:
        from harness.models.imports import import_weights

        return import_weights(ctx, source.backbone.name, source.weights_file, reuse=True)
    if source.tag is None:
        return None
    from harness.environment import library_versions
    from registry.files import sha256_file

    store = ctx.store
    tag = source.tag
    name = f"{source.backbone.name}.{tag.tag}"
    num_classes = tag.num_classes or 1000
    model = source.build(num_classes)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_weights(model, Path(tmp) / "weights.safetensors",
                            {"backbone": source.backbone.name, "num_classes": num_classes, "tag": tag.tag})
        existing = store.find_by_sha256(sha256_file(path))
        if existing is not None:
            return existing
        return store.register(
            name, backbone=source.backbone.name, kind="pretrained", files={keys.ROLE_WEIGHTS: path},
            dataset=tag.dataset, num_classes=num_classes,
            recipe={"source": tag.url or tag.file_name, "license": tag.license, "tag": tag.tag},
            metrics={keys.PUBLISHED: dict(tag.accuracy)}, environment=library_versions(),
            artifact_meta={keys.ROLE_WEIGHTS: {"format": "safetensors"}},
        )
