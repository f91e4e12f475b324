"""Select's cache: a row is reused when its fingerprint matches a stored version's.

The fingerprint covers the weights' sha256 (or the tag's file), a hash of the decoded data, the
recipe, the library versions, the device and the seed; anything else changing means retraining.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from harness.data.loading import load_split
from harness.fingerprint import fingerprint
from harness.models.build import weights_cache_path
from harness.models.sources import ModelSource, resolve_model
from registry import keys
from registry.files import sha256_file
from registry.store import ModelVersion

if TYPE_CHECKING:
    from harness.context import Context


def dataset_hash(ctx: Context, dataset: str, image_size: int | None) -> str:
    """A hash of both decoded splits (pixels and labels) as training sees them."""
    digest = hashlib.sha256()
    for split in ("train", "test"):
        data = load_split(ctx, dataset, split, image_size=image_size)
        pixels = data.images.numpy()
        for start in range(0, len(pixels), 4096):  # in chunks: a memory-mapped split need not fit in RAM
            digest.update(pixels[start:start + 4096].tobytes())
        digest.update(data.labels.numpy().tobytes())
    return digest.hexdigest()[:16]


def weights_identity(ctx: Context, ref: str, source: ModelSource | None = None) -> str | None:
    """What a candidate's starting weights are: a sha256, a tag's URL, or None for random init
    (``source``: ``ref`` resolved already)."""
    source = source or resolve_model(ctx, ref)
    if source.version is not None:
        return source.version.artifacts[keys.ROLE_WEIGHTS].sha256
    if source.tag is not None:
        path = weights_cache_path(source.tag)
        return sha256_file(path) if path and path.is_file() else source.tag.url
    return None  # random initialisation: the seed says it all


def row_fingerprint(ref: str, weights: str | None, data: str, recipe: dict[str, Any], env: dict[str, Any],
                    device: str, seed: int) -> str:
    return fingerprint(ref, weights, data, recipe, env, device, seed)


def cached_version(ctx: Context, task: str, fp: str) -> ModelVersion | None:
    """The newest version of ``task`` whose fingerprint tag is ``fp`` (one query, not a scan)."""
    return ctx.store.find_by_tag(keys.TAG_FINGERPRINT, fp, task)
