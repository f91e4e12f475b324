"""Weights files written by harness: safetensors with enough metadata to rebuild the model alone."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from registry import DataError
from registry.files import atomic_writer

FORMAT = "harness-weights-1"

MIN_INPUT_SIZE, MAX_INPUT_SIZE = 8, 4096
"""The input sizes harness trains and predicts at (``--input-size``'s range): a size a weights file
records outside it is damage, not a choice (100,000 px would reserve hundreds of GB of decoded images)."""


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


def check_metadata(path: str | os.PathLike[str], meta: dict[str, Any], *, backbone: str, channels: int,
                   head_classes: int | None) -> None:
    """Refuse metadata (:func:`read_metadata`'s) that would mislead the model's use, as a
    :class:`DataError` naming the file, the field and the fix: a preprocessing that is not an object or
    whose size, channels, mean or std are malformed (a NaN mean or a zero std predicts NaN; a huge size
    reserves hundreds of GB), a class count that is not the head's width (``head_classes``: the
    ``{backbone.head}.weight`` rows, None when unknown), class names that are not one string per class,
    a task that is not a name. ``channels`` is the backbone's, for a preprocessing that does not say.
    Keys that are absent (files written elsewhere) are fine."""
    problem = metadata_problem(meta, channels=channels, head_classes=head_classes)
    if problem is not None:
        raise damaged_metadata(path, problem, backbone)


def metadata_problem(meta: dict[str, Any], *, channels: int, head_classes: int | None) -> str | None:
    """What :func:`check_metadata` refuses, in words naming the field; None when nothing is wrong."""
    if meta.get("preprocess") is not None and (problem := preprocess_problem(meta["preprocess"], channels)):
        return problem
    num_classes = meta.get("num_classes")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            return f"num_classes is {_shown(num_classes)}, not a positive integer"
        if head_classes is not None and num_classes != head_classes:
            return f"num_classes is {num_classes}, but the weights' head has {head_classes} outputs"
    names = meta.get("class_names")
    if names is not None:
        count = num_classes if num_classes is not None else head_classes
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            return f"class_names is {_shown(names)}, not a list of class names (strings)"
        if count is not None and len(names) != count:
            return (f"class_names has {len(names)} name{'' if len(names) == 1 else 's'} ({_shown(names)}), not one "
                    f"per class ({count})")
        if len(set(names)) != len(names):
            return f"class_names is {_shown(names)}, with a name repeated"
    task = meta.get("task")
    if task is not None and (not isinstance(task, str) or not task):
        return f"task is {_shown(task)}, not a task name"
    return None


def preprocess_problem(recorded: Any, channels: int) -> str | None:
    """What is wrong with a recorded preprocessing (``{"input_size": 32, "channels": 3, "mean": [...],
    "std": [...], ...}``), in words naming the field; None when nothing is. ``channels`` is the backbone's,
    for a record that does not say. Absent keys are fine (the backbone's own apply)."""
    if not isinstance(recorded, dict):
        return f"preprocess is {_shown(recorded)}, not a JSON object"
    size = recorded.get("input_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                             or not MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE):
        return f"preprocess.input_size is {_shown(size)}, not an integer from {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE}"
    channels = recorded.get("channels", channels)
    if isinstance(channels, bool) or channels not in (1, 3):
        return f"preprocess.channels is {_shown(channels)}, not 1 or 3"
    for key in ("mean", "std"):
        value = recorded.get(key)
        if value is None:
            continue
        numbers = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  and math.isfinite(v) for v in value)
        if not numbers or len(value) != channels or (key == "std" and min(value) <= 0):
            want = f"a list of {channels} finite numbers" + (" above 0" if key == "std" else "")
            return f"preprocess.{key} is {_shown(value)}, not {want}"
    return None


def damaged_metadata(path: str | os.PathLike[str], problem: str, backbone: str = "BACKBONE") -> DataError:
    """The refusal of a weights file whose metadata is damaged: the file, what is wrong, the fix."""
    return DataError(f"{str(path)!r} has damaged metadata: {problem}; use an undamaged copy (harness registry show "
                     f"REF lists the stored file), or import its tensors alone: harness registry import {backbone} "
                     f"{path}")


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters, for one-line messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
