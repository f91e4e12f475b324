"""Weights files written by harness: safetensors with enough metadata to rebuild the model alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from registry.files import atomic_writer

FORMAT = "harness-weights-1"


def save_weights(model, path: str | os.PathLike[str], metadata: dict[str, Any]) -> Path:
    """Write ``model``'s state dict as safetensors (atomically); metadata values become JSON strings."""
    from safetensors.torch import save

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}}
    path = Path(path)
    with atomic_writer(path) as f:
        f.write(canonical(save(state, metadata=meta)))
    return path


def canonical(blob: bytes) -> bytes:
    """Rewrite a safetensors header with sorted keys, so equal weights give equal bytes (and sha256).

    safetensors serialises its metadata from a hash map, so key order (and the file hash) varies
    between runs; content addressing and fingerprints need one byte sequence per content.
    """
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + n:]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The harness metadata of a safetensors file ({} for files written elsewhere)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as exc:  # truncated, damaged or not safetensors: in the words every weights reader uses
        from harness.models.checkpoint import unreadable_weights

        raise unreadable_weights(Path(path), exc, safetensors=True) from None
    result: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            result[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            result[key] = value
    return result
