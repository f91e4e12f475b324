"""Every torchvision classification model as a backbone, its weights enums mapped to tags.

Tags follow timm's naming: ``IMAGENET1K_V1`` -> ``tv_in1k``, ``IMAGENET1K_V2`` -> ``tv2_in1k``,
``IMAGENET1K_SWAG_E2E_V1`` -> ``swag_e2e_in1k``. Metadata (params, FLOPs, accuracy, recipe,
licence) comes from each weights enum's ``meta``. torchvision reports ``_ops`` in GFLOPs that
count one per multiply-add; we store FLOPs at two per multiply-add, like the rest of harness.
Weights load through torchvision itself, so they are cached under ``$TORCH_HOME/hub/checkpoints``.

Listing never imports torchvision (about 3 s and 600 MB): names and metadata come from an index
written once per installed torchvision version under ``$HARNESS_CACHE/torchvision``
(:mod:`harness.library_index`); a builder imports torchvision when a model is built.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import harness
from harness.library_index import cached_index, installed_version
from registry import Backbone, PluginError, WeightTag

DISTRIBUTION = "torchvision"
INDEX_FORMAT = 1  # bump when what the index stores changes

TORCHVISION_LICENSE = "BSD-3-Clause (code); weights: ImageNet terms of access"
# Models whose forward checks the input size against the size they were built for.
FIXED_INPUT = ("vit_", "maxvit_")


def tag_for(enum_name: str) -> str:
    """Map a torchvision weights enum member name to a harness tag."""
    rest = enum_name.lower()
    dataset = "in1k" if rest.startswith("imagenet1k_") else rest.split("_", 1)[0]
    rest = rest.removeprefix("imagenet1k_")
    if rest == "v1":
        return f"tv_{dataset}"
    match = re.fullmatch(r"v(\d+)", rest)
    if match:
        return f"tv{match.group(1)}_{dataset}"
    rest = re.sub(r"_v1$", "", rest)
    return f"{rest}_{dataset}" if rest.startswith("swag") else f"tv_{rest}_{dataset}"


def _weight_tag(weights: Any) -> WeightTag:
    meta = weights.meta
    keywords = getattr(weights.transforms, "keywords", {})
    crop = keywords.get("crop_size", 224)
    metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
    ops = meta.get("_ops")
    file_name = weights.url.rsplit("/", 1)[-1]
    prefix = re.search(r"-([0-9a-f]{8,})\.", file_name)
    return WeightTag(
        tag=tag_for(weights.name),
        url=weights.url,
        file_name=file_name,
        hash_prefix=prefix.group(1) if prefix else None,
        dataset="ImageNet-1K" if "IMAGENET1K" in weights.name else None,
        license=meta.get("license") or TORCHVISION_LICENSE,
        num_classes=len(meta.get("categories") or []) or None,
        input_size=int(crop if isinstance(crop, int) else crop[0]),
        resize_size=keywords.get("resize_size"),
        mean=tuple(keywords.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(keywords.get("std", (0.229, 0.224, 0.225))),
        accuracy={f"imagenet_{k.replace('acc@', 'top')}": float(v) for k, v in metrics.items()},
        num_params=meta.get("num_params"),
        flops=round(2 * ops * 1e9) if ops is not None else None,
        recipe=meta.get("recipe"),
        notes=f"torchvision {type(weights).__name__}.{weights.name}",
    )


def _builder(name: str, members: dict[str, str], head: str) -> Any:
    """Build ``name`` with torchvision (imported here); ``members`` maps each tag to its weights enum member."""

    def build(num_classes: int, weights: str | None) -> Any:
        from torchvision import models

        from harness.models import replace_head

        kwargs: dict[str, Any] = {}
        if name in ("googlenet", "inception_v3"):
            kwargs["aux_logits"] = False
            if weights is None:
                kwargs["init_weights"] = True
        if weights is None:
            return models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
        member = models.get_model_weights(name)[members[weights]]
        model = models.get_model(name, weights=member, **kwargs)
        return replace_head(model, head, num_classes)

    return build


def _head_path(name: str) -> str:
    """Where each torchvision family keeps its classifier."""
    heads = {
        "alexnet": "classifier.6", "vgg": "classifier.6", "convnext": "classifier.2",
        "densenet": "classifier", "efficientnet": "classifier.1", "mnasnet": "classifier.1",
        "mobilenet_v2": "classifier.1", "mobilenet_v3": "classifier.3", "maxvit": "classifier.5",
        "squeezenet": "classifier.1", "swin": "head", "vit": "heads.head",
    }
    for prefix, path in heads.items():
        if name.startswith(prefix):
            return path
    return "fc"  # resnet, resnext, wide_resnet, regnet, shufflenet, googlenet, inception


def _family(name: str) -> str:
    for family in ("wide_resnet", "mobilenet_v2", "mobilenet_v3", "efficientnet_v2", "swin_v2"):
        if name.startswith(family):
            return family
    return re.sub(r"[_\d].*$", "", name)


@harness.hookimpl
def register_backbones(register: Any) -> None:
    """Register all torchvision classification models from the index (no torchvision import, no model built)."""
    for backbone in load_index():
        register(backbone)


# -- the index -------------------------------------------------------------------------------


def load_index(version: str | None = None) -> list[Backbone]:
    """torchvision's backbones from the index of ``version`` (default: the installed one), built
    (by importing torchvision) when it is missing or damaged."""
    version = version or installed_version(DISTRIBUTION)
    if version is None:
        raise PluginError(f"{DISTRIBUTION} is not installed; pip install {DISTRIBUTION}")
    return cached_index(DISTRIBUTION, version, build_index, _parse, format_version=INDEX_FORMAT)


def build_index() -> dict[str, Any]:
    """Every torchvision classification model and its weights' metadata, as JSON (imports torchvision)."""
    import torchvision
    from torchvision import models

    return {"torchvision": torchvision.__version__,
            "models": [_model_record(name, models.get_model_weights(name))
                       for name in models.list_models(module=models)]}


def _model_record(name: str, enum_type: Any) -> dict[str, Any]:
    tags = [_weight_tag(w) for w in enum_type]
    default_tag = tag_for(enum_type.DEFAULT.name)
    fixed = name.startswith(FIXED_INPUT)
    # A randomly initialised ViT is built for 224 px; pretrained ones for their tag's size.
    input_size = 224 if fixed else next(t.input_size for t in tags if t.tag == default_tag)
    return {
        "name": name, "head": _head_path(name), "input_size": input_size or 224,
        "min_input_size": max(min(w.meta.get("min_size", (1, 1))[0] for w in enum_type), 16),
        "fixed_input_size": fixed, "default_tag": default_tag, "family": _family(name),
        "members": {tag_for(w.name): w.name for w in enum_type},
        "tags": [dataclasses.asdict(t) for t in tags],
    }


def _parse(data: dict[str, Any]) -> list[Backbone]:
    """The index as backbones; anything missing or malformed raises (and the index is rebuilt)."""
    if not data["models"]:
        raise ValueError("the torchvision index lists no models")
    return [_backbone(record, data["torchvision"]) for record in data["models"]]


def _backbone(record: dict[str, Any], version: str) -> Backbone:
    name = record["name"]
    return Backbone(
        name=name,
        builder=_builder(name, dict(record["members"]), record["head"]),
        head=record["head"],
        input_size=int(record["input_size"]),
        min_input_size=int(record["min_input_size"]),
        fixed_input_size=bool(record["fixed_input_size"]),
        weights=tuple(_tag_from(t) for t in record["tags"]),
        default_tag=record["default_tag"],
        family=record["family"],
        license=TORCHVISION_LICENSE,
        source=f"torchvision {version}: torchvision.models.{name}",
        description=f"torchvision {name}",
    )


def _tag_from(fields: dict[str, Any]) -> WeightTag:
    tuples = {k: tuple(fields[k]) for k in ("mean", "std") if fields.get(k) is not None}
    return WeightTag(**{**fields, **tuples})
