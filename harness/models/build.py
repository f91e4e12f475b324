"""Build catalogue backbones into ``nn.Module``s with the right head, and measure them.

Weights come from three places: a backbone's own tag (torchvision's cache under ``$TORCH_HOME``,
downloaded when online), a local file (``.safetensors`` preferred, ``.pth`` read with
``weights_only=True``), or random initialisation. Nothing here ever unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING

from harness.models.checkpoint import load_state_dict_file
from registry import Backbone, Catalogue, DataError, HarnessError, PluginError, UsageError, WeightTag

if TYPE_CHECKING:
    import torch
    from torch import nn


def get_submodule(model: nn.Module, path: str) -> nn.Module:
    """``model.get_submodule`` with an error that names the backbone's declared head."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise UsageError(f"model {type(model).__name__} has no module {path!r} (its declared head)") from None


def head_of(backbone: Backbone, model: nn.Module) -> nn.Module:
    """The classifier head ``backbone`` declares, or a :class:`PluginError` naming the backbone, its
    plugin, the declared path and the module paths that come closest (the plugin's ``head=`` is wrong)."""
    import difflib

    try:
        head = model.get_submodule(backbone.head)
    except AttributeError:
        names = [n for n, m in model.named_modules() if n and not list(m.children())]
        close = difflib.get_close_matches(backbone.head, names, n=2, cutoff=0.5) or names[-2:]
        raise PluginError(f"backbone {backbone.name!r} ({backbone.plugin or 'no plugin'}) declares head "
                          f"{backbone.head!r}, but the model its builder returns has no such module; "
                          f"set head= to the classifier's path (e.g. {' or '.join(map(repr, close))})") from None
    from torch import nn

    if not isinstance(head, (nn.Linear, nn.Conv2d)):
        raise PluginError(f"backbone {backbone.name!r} ({backbone.plugin or 'no plugin'}): its head "
                          f"{backbone.head!r} is a {type(head).__name__}; head= must name the final nn.Linear "
                          "(or 1x1 nn.Conv2d) classifier")
    return head


def call_builder(backbone: Backbone, num_classes: int, tag: str | None) -> nn.Module:
    """The plugin's builder, with its own failures named as the plugin's (a bug there, not the user's)."""
    from torch import nn

    try:
        model = backbone.builder(num_classes, tag)
    except (HarnessError, urllib.error.URLError, ConnectionError, TimeoutError, MemoryError):
        raise
    except Exception as exc:
        import torch

        if isinstance(exc, NotImplementedError) and torch.get_default_device().type == "meta":
            raise  # a builder that computes with real tensors; the caller builds on the CPU instead
        raise PluginError(f"backbone {backbone.name!r} ({backbone.plugin or 'no plugin'}): its builder raised "
                          f"{type(exc).__name__}: {exc}; the plugin must build the model for "
                          f"builder(num_classes, weights)") from None
    if not isinstance(model, nn.Module):
        raise PluginError(f"backbone {backbone.name!r} ({backbone.plugin or 'no plugin'}): its builder returned "
                          f"{type(model).__name__}, not a torch.nn.Module")
    return model


def set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    """Replace the submodule at dotted ``path`` (works inside ``nn.Sequential`` too)."""
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, leaf, module)


def _head_widths(head: nn.Module) -> tuple[int, int]:
    """(input, output) width of a classifier head: an ``nn.Linear`` or a 1x1 ``nn.Conv2d``."""
    from torch import nn

    if isinstance(head, nn.Linear):
        return head.in_features, head.out_features
    if isinstance(head, nn.Conv2d):
        return head.in_channels, head.out_channels
    raise UsageError(f"the head is a {type(head).__name__}; a backbone's head must be an nn.Linear or a 1x1 "
                     "nn.Conv2d")


def head_in_features(head: nn.Module) -> int:
    """Width of the features entering a classifier head."""
    return _head_widths(head)[0]


def head_out_features(head: nn.Module) -> int:
    """Number of classes a classifier head outputs."""
    return _head_widths(head)[1]


def replace_head(model: nn.Module, path: str, num_classes: int) -> nn.Module:
    """Give ``model`` a freshly initialised head at ``path`` with ``num_classes`` outputs."""
    from torch import nn

    old = get_submodule(model, path)
    if head_out_features(old) == num_classes:
        return model
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        assert isinstance(old, nn.Conv2d)
        (kh, kw), (sh, sw) = old.kernel_size, old.stride  # a Conv2d's are 2-tuples; torch types them (int, ...)
        new = nn.Conv2d(old.in_channels, num_classes, kernel_size=(kh, kw), stride=(sh, sw),
                        bias=old.bias is not None)
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    set_submodule(model, path, new)
    return model


def weights_cache_path(tag: WeightTag) -> Path | None:
    """Where ``tag``'s file is cached: ``$TORCH_HOME/hub/checkpoints/<file>`` for a download, the Hub's
    cache for a ``hub_id`` (the cached file, else where to place one)."""
    if tag.hub_id:
        from harness.models import hub

        return hub.cached_file(tag.hub_id) or hub.placement(tag.hub_id)
    file_name = tag.file_name or (tag.url.rsplit("/", 1)[-1] if tag.url else None)
    if not file_name:
        return None
    return torch_hub_dir() / "checkpoints" / file_name


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch (``list --tags`` asks for every tag): torch's own
    answer once torch is loaded (it honours ``torch.hub.set_dir``), else the same rule it follows:
    ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``."""
    import sys

    if "torch.hub" in sys.modules:
        return Path(sys.modules["torch.hub"].get_dir())
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def build_model(catalogue: Catalogue, name: str, num_classes: int,
                weights_file: str | os.PathLike[str] | None = None) -> nn.Module:
    """Build backbone ``name`` (``family_variant[.tag]``) with a ``num_classes``-way head.

    With ``weights_file`` the file's state dict (including its head, whatever its width) is loaded
    strictly, then the head is replaced if the class count differs.
    """
    backbone, tag = catalogue.backbone(name)
    return build_backbone(backbone, tag, num_classes, weights_file)


def build_backbone(backbone: Backbone, tag: WeightTag | None, num_classes: int,
                   weights_file: str | os.PathLike[str] | None = None) -> nn.Module:
    """:func:`build_model` for an entry already looked up."""
    if weights_file is not None:
        if tag is not None:
            raise UsageError(f"give either a weight tag ({backbone.name}.{tag.tag}) or a weights file, not both")
        return _build_from_file(backbone, num_classes, weights_file)
    try:
        model = call_builder(backbone, num_classes, tag.tag if tag else None)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        assert tag is not None
        raise DataError(f"weights {backbone.name}.{tag.tag} are not cached and cannot be downloaded "
                        f"({exc}); place the file at {weights_cache_path(tag)}") from None
    _check_head(backbone, model, num_classes)
    return model


def _build_from_file(backbone: Backbone, num_classes: int, weights_file: str | os.PathLike[str]) -> nn.Module:
    model, state = fitted_model(backbone, weights_file)
    model.load_state_dict(state)
    replace_head(model, backbone.head, num_classes)
    _check_head(backbone, model, num_classes)
    return model


def fitted_model(backbone: Backbone, weights_file: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """``backbone`` built with the file's class count, and the file's state dict, after checking
    that every tensor fits (names and shapes); a DataError naming what does not, otherwise."""
    state = load_state_dict_file(weights_file)
    head_weight = state.get(f"{backbone.head}.weight")
    if head_weight is None:
        raise DataError(f"{str(weights_file)!r} has no {backbone.head}.weight: it is not a "
                        f"{backbone.name} checkpoint")
    file_classes = int(head_weight.shape[0])
    model = call_builder(backbone, file_classes, None)
    head_of(backbone, model)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        detail = [f"{len(keys)} {one if len(keys) == 1 else many} (e.g. {keys[0]})" for one, many, keys in
                  (("missing key", "missing keys", missing), ("unexpected key", "unexpected keys", unexpected),
                   ("tensor of another shape", "tensors of another shape", mismatched)) if keys]
        raise DataError(f"{str(weights_file)!r} does not fit {backbone.name}: {', '.join(detail)}")
    return model, state


def _check_head(backbone: Backbone, model: nn.Module, num_classes: int) -> None:
    """The declared head must output ``num_classes``. When it does not but another classifier-shaped
    layer does, ``head=`` names the wrong layer (the plugin's entry is wrong, its builder is fine)."""
    head = head_of(backbone, model)
    width = head_out_features(head)
    if width == num_classes:
        return
    who = f"backbone {backbone.name!r} ({backbone.plugin or 'no plugin'})"
    sized = _layers_with_outputs(model, num_classes)
    if sized:
        raise PluginError(f"{who} declares head {backbone.head!r}, a {type(head).__name__} of {width} outputs, but "
                          f"the layer giving the {num_classes} classes is {sized[-1]!r}: set head={sized[-1]!r}")
    raise PluginError(f"{who}: its builder returned a head of {width} classes when asked for {num_classes}; "
                      "builder(num_classes, weights) must size the head")


def _layers_with_outputs(model: nn.Module, width: int) -> list[str]:
    """Paths of the ``nn.Linear`` and 1x1 ``nn.Conv2d`` layers of ``model`` with ``width`` outputs."""
    from torch import nn

    return [name for name, m in model.named_modules()
            if (isinstance(m, nn.Linear) and m.out_features == width)
            or (isinstance(m, nn.Conv2d) and m.out_channels == width and tuple(m.kernel_size) == (1, 1))]


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: int, channels: int = 3) -> int:
    """FLOPs of one forward pass at batch 1, counting 2 FLOPs per multiply-add."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    x = torch.zeros(1, channels, input_size, input_size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())
