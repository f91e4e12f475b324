"""Import a state dict into the store, after checking it loads into its backbone (``registry``
itself knows nothing of backbones)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness.environment import library_versions
from harness.models.build import build_model, count_params
from harness.models.checkpoint import load_state_dict_file
from harness.models.weights import save_weights
from registry import UsageError, keys
from registry.files import sha256_file
from registry.store import ModelVersion

if TYPE_CHECKING:
    from harness.context import Context


def import_weights(ctx: Context, backbone: str, path: str | Path, *, name: str | None = None,
                   alias: str | None = None, reuse: bool = False) -> ModelVersion:
    """Check a state dict against ``backbone`` (strictly), then register it as a new version.

    With ``reuse`` an identical earlier import (same canonical weights bytes) is returned instead,
    so fine-tuning from one file many times gives its runs one common parent.
    """
    catalogue, store = ctx.catalogue, ctx.store
    store.require_writable()
    entry = catalogue.backbones.get(backbone)
    path = Path(path)
    state = load_state_dict_file(path)
    head = state.get(f"{entry.head}.weight")
    if head is None:
        raise UsageError(f"{path} has no {entry.head}.weight: it is not a {backbone} state dict")
    num_classes = int(head.shape[0])
    model = build_model(catalogue, backbone, num_classes, weights_file=path)
    name = name or f"{backbone}-{path.stem}"
    if name.partition(".")[0] in catalogue.backbones and name != backbone:
        raise UsageError(f"{{param}} {name!r} looks like a backbone reference; pick another", param="name")
    with tempfile.TemporaryDirectory() as tmp:
        stored = save_weights(model, Path(tmp) / "weights.safetensors",
                              {"backbone": backbone, "num_classes": num_classes})
        if reuse and (existing := store.find_by_sha256(sha256_file(stored))) is not None:
            return existing
        return store.register(
            name, backbone=backbone, kind="import", files={keys.ROLE_WEIGHTS: stored}, num_classes=num_classes,
            recipe={"source": str(path.resolve()), "source_sha256": sha256_file(path)},
            metrics={keys.PARAMS: count_params(model)}, environment=library_versions(), alias=alias,
            artifact_meta={keys.ROLE_WEIGHTS: {"format": "safetensors"}},
        )
