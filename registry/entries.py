"""The typed entries plugins register: backbones (with weight tags), datasets, metrics and tasks.

Entries hold metadata and *callables*; nothing here imports torch. That is what lets
``harness list`` show hundreds of entries without building a model or reading a dataset: a
builder or loader runs only when someone asks for that one thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from registry.errors import EntryError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_BACKBONE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TAG_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_PLAIN_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def _check_name(kind: str, name: str, pattern: re.Pattern[str]) -> None:
    if not isinstance(name, str) or not pattern.match(name):
        raise EntryError(f"invalid {kind} name {name!r}: must match {pattern.pattern}")


@dataclass(frozen=True)
class PluginInfo:
    """Which plugin registered an entry: its plugin name and the distribution that ships it."""

    name: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.distribution:
            return f"plugin {self.name!r} ({self.distribution} {self.version or '?'})"
        return f"plugin {self.name!r}"


@dataclass(frozen=True)
class WeightTag:
    """One set of pretrained weights for a backbone, addressed as ``backbone.tag``.

    ``url``/``file_name`` say where the weights come from (a download, or a file placed in the
    torch hub cache for air-gapped use); ``hub_id`` names a Hugging Face Hub repository instead
    (weights in the Hub's cache, as timm's tags are). FLOPs follow the 2-FLOPs-per-multiply-add convention
    and are counted at ``input_size``.
    """

    tag: str
    url: str | None = None
    file_name: str | None = None
    sha256: str | None = None
    hash_prefix: str | None = None
    dataset: str | None = None
    license: str | None = None
    num_classes: int | None = None
    input_size: int | None = None
    resize_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    accuracy: Mapping[str, float] = field(default_factory=dict)
    num_params: int | None = None
    flops: float | None = None
    recipe: str | None = None
    notes: str | None = None
    hub_id: str | None = None

    def __post_init__(self) -> None:
        _check_name("weight tag", self.tag, _TAG_NAME)


Builder = Callable[[int, "str | None"], Any]


@dataclass(frozen=True)
class Backbone:
    """A network architecture, buildable with a fresh head of any size.

    ``builder(num_classes, weights)`` returns an ``nn.Module`` whose classifier (at the dotted
    attribute path ``head``) outputs ``num_classes`` logits; ``weights`` is one of the entry's
    tags or ``None`` for random initialisation. ``feature_dim`` is the width of the features that
    enter the head.
    """

    name: str
    builder: Builder
    head: str
    feature_dim: int | None = None
    input_size: int = 224
    min_input_size: int = 1
    fixed_input_size: bool = False
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    weights: tuple[WeightTag, ...] = ()
    default_tag: str | None = None
    family: str | None = None
    license: str | None = None
    source: str | None = None
    paper: str | None = None
    description: str = ""
    plugin: PluginInfo | None = None

    def __post_init__(self) -> None:
        _check_name("backbone", self.name, _BACKBONE_NAME)
        if not callable(self.builder):
            raise EntryError(f"backbone {self.name!r}: builder must be callable")
        tags = [w.tag for w in self.weights]
        if len(tags) != len(set(tags)):
            raise EntryError(f"backbone {self.name!r}: duplicate weight tags {tags}")
        if self.default_tag is not None and self.default_tag not in tags:
            raise EntryError(f"backbone {self.name!r}: default_tag {self.default_tag!r} not in {tags}")

    def tag(self, tag: str) -> WeightTag | None:
        """The weight tag called ``tag``, or ``None``."""
        return next((w for w in self.weights if w.tag == tag), None)


@dataclass(frozen=True)
class ImageSplit:
    """One split of a dataset, decoded into memory.

    ``images`` is a ``uint8`` tensor shaped ``(N, C, H, W)``; ``labels`` an ``int64`` tensor of
    shape ``(N,)``. Holding the split decoded once is what makes the training loop fast.
    """

    images: Any
    labels: Any
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


Loader = Callable[..., ImageSplit]


@dataclass(frozen=True)
class Dataset:
    """An image classification dataset.

    ``loader(split, root, download=..., image_size=...)`` returns an :class:`ImageSplit`.
    ``root`` is the data folder (torchvision's ``root``); ``download`` says whether the network
    may be used; ``image_size`` is a hint for datasets of varying image size (image folders).
    ``num_classes``/``class_names`` may be ``None`` when only the data knows them.
    """

    name: str
    loader: Loader
    num_classes: int | None
    class_names: tuple[str, ...] | None = None
    splits: tuple[str, ...] = ("train", "test")
    image_size: int | None = None
    channels: int = 3
    license: str | None = None
    citation: str | None = None
    homepage: str | None = None
    description: str = ""
    plugin: PluginInfo | None = None

    def __post_init__(self) -> None:
        _check_name("dataset", self.name, _PLAIN_NAME)
        if not callable(self.loader):
            raise EntryError(f"dataset {self.name!r}: loader must be callable")
        if (self.class_names is not None and self.num_classes is not None
                and len(self.class_names) != self.num_classes):
            raise EntryError(f"dataset {self.name!r}: {len(self.class_names)} class names "
                             f"for {self.num_classes} classes")


MetricKind = Literal["quality", "efficiency"]


@dataclass(frozen=True)
class Metric:
    """A number that ranks models.

    Quality metrics: ``compute(logits, targets, num_classes) -> float`` over a whole split
    (logits ``(N, C)`` float, targets ``(N,)`` int64). Efficiency metrics:
    ``compute(model, example_input) -> float``. ``higher_is_better`` is what tables rank by.
    """

    name: str
    kind: MetricKind
    higher_is_better: bool
    unit: str
    compute: Callable[..., float]
    description: str = ""
    plugin: PluginInfo | None = None

    def __post_init__(self) -> None:
        _check_name("metric", self.name, _PLAIN_NAME)
        if self.kind not in ("quality", "efficiency"):
            raise EntryError(f"metric {self.name!r}: kind must be 'quality' or 'efficiency'")
        if not isinstance(self.higher_is_better, bool):
            raise EntryError(f"metric {self.name!r}: higher_is_better must be True or False")
        if not callable(self.compute):
            raise EntryError(f"metric {self.name!r}: compute must be callable")


_PREFIX = re.compile(r"^[a-z][a-z0-9]*_$")


@dataclass(frozen=True)
class Family:
    """Entries a plugin registers later, all named ``prefix...``: a large or slow-to-list zoo.

    Register it like an entry (``register(registry.Family(...))``); the catalogue calls
    ``fill(register)`` only when a name or pattern that can start with ``prefix`` is looked up, or
    when every entry is listed. So ``harness finetune resnet18`` never imports the library behind
    a thousand ``timm_*`` backbones. ``unavailable`` (set when that library is not installed) is
    the one-line fix shown when a user asks for a name of the family; listing everything skips it.
    """

    prefix: str
    fill: Callable[[Callable[[Any], Any]], None] | None = None
    unavailable: str | None = None
    description: str = ""
    plugin: PluginInfo | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _PREFIX.match(self.prefix):
            raise EntryError(f"invalid family prefix {self.prefix!r}: must match {_PREFIX.pattern}")
        if (self.fill is None) == (self.unavailable is None):
            raise EntryError(f"family {self.prefix!r}: give fill= (the entries) or unavailable= (why not), "
                             "one of the two")
        if self.fill is not None and not callable(self.fill):
            raise EntryError(f"family {self.prefix!r}: fill must be callable")

    def covers(self, name: str) -> bool:
        """Whether ``name`` (or a shell-style pattern) can name an entry of this family."""
        literal = re.split(r"[*?\[]", name, maxsplit=1)[0]
        wild = literal != name
        return literal.startswith(self.prefix) or (wild and self.prefix.startswith(literal))


AUGMENTATIONS = ("random_crop", "hflip")
"""The augmentations harness's batch pipeline implements; a protocol or budget names a subset."""


@dataclass(frozen=True)
class Budget:
    """How much training a protocol spends; flags on the CLI override any field."""

    epochs: int
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    train_limit: int | None = None
    test_limit: int | None = None
    input_size: int | None = None
    augmentation: tuple[str, ...] | None = None  # None: the protocol's; short budgets use less
    candidates: tuple[str, ...] | None = None  # None: the protocol's; a short budget can try fewer, smaller models
    # select trains its candidates by successive halving up to this many epochs (every candidate the
    # first rung, the best third on validation onward; rungs grow threefold): a short budget then
    # spends its time on the model that will ship. None: every candidate trains ``epochs``.
    # fine-tune and study runs at this budget train ``epochs``.
    halving_epochs: int | None = None


@dataclass(frozen=True)
class Protocol:
    """The standard recipe of a task: input size, augmentation, budgets, candidates."""

    input_size: int
    budgets: Mapping[str, Budget]
    augmentation: tuple[str, ...] = ("random_crop", "hflip")
    crop_padding: int = 4
    candidates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        missing = {"quick", "standard", "full"} - set(self.budgets)
        if missing:
            raise EntryError(f"protocol is missing budgets {sorted(missing)}")

    def candidates_for(self, budget: str) -> tuple[str, ...]:
        """The candidates ``select`` tries at ``budget``: the budget's own list, else the protocol's."""
        chosen = self.budgets[budget].candidates if budget in self.budgets else None
        return self.candidates if chosen is None else chosen


@dataclass(frozen=True)
class Task:
    """A dataset, the metrics that judge it (the first is primary) and its protocol."""

    name: str
    dataset: str
    metrics: tuple[str, ...]
    protocol: Protocol
    description: str = ""
    plugin: PluginInfo | None = None

    def __post_init__(self) -> None:
        _check_name("task", self.name, _PLAIN_NAME)
        if not self.metrics:
            raise EntryError(f"task {self.name!r}: needs at least one metric")
        used = [*self.protocol.augmentation]
        for budget in self.protocol.budgets.values():
            used += budget.augmentation or ()
        unknown = sorted(set(used) - set(AUGMENTATIONS))
        if unknown:
            raise EntryError(f"task {self.name!r}: unknown augmentation {', '.join(map(repr, unknown))}; "
                             f"use {', '.join(AUGMENTATIONS)} (or () for none)")

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


def to_dict(entry: Any) -> dict[str, Any]:
    """A JSON-ready view of an entry: callables dropped, tuples as lists."""
    data = asdict(entry)
    return {k: v for k, v in data.items() if not callable(getattr(entry, k, None))}
