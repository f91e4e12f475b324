"""timm's architectures as backbones ``timm_<architecture>``, its pretrained configs as weight tags.

Active when ``timm`` is installed (extra ``[timm]``). The names carry the prefix ``timm_`` so they
cannot clash with torchvision's (timm's ``resnet50`` is ``timm_resnet50``; its ``resnet50.a1_in1k``
is ``timm_resnet50.a1_in1k``), and a user's ``timm/resnet50`` spelling is read the same way.

Listing is fast: the entries are a :class:`registry.Family`, filled only when a ``timm_`` name or
pattern is asked for, and from an index written once per timm version under ``$HARNESS_CACHE/timm``
(``import timm`` costs seconds; reading the index does not). No model is built to list.

Weights are timm's Hugging Face Hub repositories (``timm/<architecture>.<tag>``), read through the
Hub's cache by :mod:`harness.models.hub` (never unpickled). Left out: architectures whose classifier
is two heads (distilled DeiT-style models) or none, and the few tags that exist only as a URL.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
from harness import library_index
from harness.library_index import cached_index
from registry import Backbone, DataError, Family, WeightTag

PREFIX = "timm_"
INDEX_FORMAT = 3  # 3: each architecture's family, as timm files it
# timm declares a minimum for few models; most ImageNet networks downsample 32 times (at 28 px
# timm's convnext ends on a 1x1 map its 2x2 downsampling cannot take), so smaller images are scaled up.
MIN_INPUT_SIZE = 32
RESULTS_ENV = "HARNESS_TIMM_RESULTS"
EXTRA = "the timm extra: pip install 'imgcls-harness[timm]'"


@harness.hookimpl
def register_backbones(register: Callable[[Any], None]) -> None:
    """Register timm's architectures as a deferred family (nothing is imported until one is asked for)."""
    if importlib.util.find_spec("timm") is None:
        register(Family(prefix=PREFIX, unavailable=EXTRA, description="timm architectures"))
        return
    register(Family(prefix=PREFIX, fill=_fill, description="timm architectures and their Hub weights"))


def _fill(register: Callable[[Any], None]) -> None:
    version = importlib.metadata.version("timm")
    results = published_results()

    def parse(data: list[dict[str, Any]]) -> list[Backbone]:  # a malformed entry raises: the index is rebuilt
        return [_backbone(arch, version, results) for arch in data]

    for backbone in cached_index("timm", version, build_index, parse, format_version=INDEX_FORMAT):
        register(backbone)


def published_results() -> dict[str, dict[str, float]]:
    """ImageNet top-1/top-5 and parameter count per ``arch.tag`` from timm's own results table.

    timm publishes them in its repository (``results/results-imagenet.csv``), not in its package;
    ``$HARNESS_TIMM_RESULTS`` names a copy. A file that cannot be read is a one-line error, not a
    silently empty column.
    """
    import csv
    import os

    path = os.environ.get(RESULTS_ENV)
    if not path:
        return {}
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return {row["model"]: {"imagenet_top1": float(row["top1"]), "imagenet_top5": float(row["top5"]),
                               "params": float(row["param_count"].replace(",", "")) * 1e6} for row in rows}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"${RESULTS_ENV}={path!r} is not timm's results-imagenet.csv ({type(exc).__name__}: "
                        f"{exc}); point it at results/results-imagenet.csv of timm's repository, or unset it") from None


def _backbone(arch: dict[str, Any], version: str, results: dict[str, dict[str, float]]) -> Backbone:
    tags = tuple(_weight_tag(arch["name"], t, results.get(f"{arch['name']}.{t['tag']}")) for t in arch["tags"])
    return Backbone(
        name=PREFIX + arch["name"],
        builder=_builder(arch["name"], {t.tag: str(t.hub_id) for t in tags}),
        head=arch["head"],
        input_size=arch["input_size"],
        min_input_size=arch["min_input_size"],
        fixed_input_size=arch["fixed_input_size"],
        mean=tuple(arch["mean"]),
        std=tuple(arch["std"]),
        weights=tags,
        default_tag=tags[0].tag if tags else None,
        family=arch["family"],
        license=arch["license"],
        source=f"timm {version}: timm.create_model({arch['name']!r})",
        paper=arch["paper"],
        description=f"timm {arch['name']}",
    )


def _weight_tag(arch: str, t: dict[str, Any], published: dict[str, float] | None) -> WeightTag:
    published = published or {}
    return WeightTag(
        tag=t["tag"], hub_id=t["hub_id"], url=f"https://huggingface.co/{t['hub_id']}",
        dataset=_dataset(t["tag"]), license=t["license"], num_classes=t["num_classes"],
        input_size=t["input_size"], resize_size=t["resize_size"],
        mean=tuple(t["mean"]), std=tuple(t["std"]),
        accuracy={k: v for k, v in published.items() if k != "params"},
        num_params=int(published["params"]) if "params" in published else None,
        notes=f"timm {arch}.{t['tag']}; test input size {t['test_input_size']}" if t["test_input_size"] else None,
    )


def _dataset(tag: str) -> str:
    """The data a tag was trained on last, by timm's naming: ``in12k_ft_in1k_384`` -> ``in1k``."""
    words = tag.split("_")
    while len(words) > 1 and words[-1].isdigit():
        words.pop()
    return words[-1]


def _builder(arch: str, hub_ids: dict[str, str]) -> Callable[[int, str | None], Any]:
    def build(num_classes: int, tag: str | None) -> Any:
        import timm

        if tag is None:
            return timm.create_model(arch, pretrained=False, num_classes=num_classes)
        from harness.models.hub import load_hub_state_dict

        state = load_hub_state_dict(hub_ids[tag], f"{PREFIX}{arch}.{tag}")
        # timm's own loader adapts the state dict (filters, a classifier of another width dropped)
        return timm.create_model(f"{arch}.{tag}", pretrained=True, num_classes=num_classes,
                                 pretrained_cfg_overlay={"state_dict": state})

    return build


# -- the index -------------------------------------------------------------------------------


def index_path(version: str) -> Path:
    """Where the index for timm ``version`` is kept (under harness's cache folder)."""
    return library_index.index_path("timm", version, INDEX_FORMAT)


def _index(version: str) -> list[dict[str, Any]]:
    """The index of timm ``version`` as written (built when missing or not a list)."""
    return cached_index("timm", version, build_index, _as_list, format_version=INDEX_FORMAT)


def _as_list(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise TypeError(f"the timm index is a {type(data).__name__}, not a list")
    return data


def build_index() -> list[dict[str, Any]]:
    """Every timm architecture with a single linear classifier, and its Hub-hosted tags (imports timm)."""
    import timm.models

    # the family is the timm module that defines the architecture (mobilenetv3, swin_transformer_v2,
    # efficientnet for tf_efficientnet_b0): timm's own grouping, not a guess from the name
    family = {name: module for module in timm.list_modules() for name in timm.list_models(module=module)}
    index = []
    for name in timm.list_models():
        cfgs = timm.models.get_arch_pretrained_cfgs(name)
        default = next(iter(cfgs.values()), None)
        if default is None or not isinstance(default.classifier, str):
            continue
        tags = [_tag_record(full.partition(".")[2], cfg) for full, cfg in cfgs.items()
                if cfg.hf_hub_id and full.partition(".")[2] and cfg.classifier == default.classifier]
        index.append({
            "name": name, "family": family.get(name, name), "head": default.classifier,
            "input_size": default.input_size[-1],
            "min_input_size": default.min_input_size[-1] if default.min_input_size else MIN_INPUT_SIZE,
            "fixed_input_size": bool(default.fixed_input_size), "mean": list(default.mean),
            "std": list(default.std), "license": default.license, "paper": default.paper_ids,
            "tags": tags,
        })
    return index


def _tag_record(tag: str, cfg: Any) -> dict[str, Any]:
    size = cfg.input_size[-1]
    return {"tag": tag, "hub_id": cfg.hf_hub_id, "num_classes": cfg.num_classes, "license": cfg.license,
            "input_size": size, "resize_size": round(size / cfg.crop_pct) if cfg.crop_pct else None,
            "test_input_size": cfg.test_input_size[-1] if cfg.test_input_size else None,
            "mean": list(cfg.mean), "std": list(cfg.std)}
