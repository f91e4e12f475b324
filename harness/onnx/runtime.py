"""Load ONNX files safely and run them with ONNX Runtime.

External data must sit inside the model's folder (no absolute paths, ``..`` or symbolic links);
sessions get explicit providers, checked after creation so a silent fallback is an error, and
non-spinning worker threads (spinning ORT threads slow any PyTorch work in the same process).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from registry import BenchmarkError, DataError


def check_external_data(path: str | os.PathLike[str]) -> list[Path]:
    """Refuse external-data locations outside the model's folder or through symbolic links."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    path = Path(path)
    if path.is_symlink():
        raise DataError(f"{path} is a symbolic link; refusing to load it")
    folder = path.parent.resolve()
    proto = onnx.load(str(path), load_external_data=False)
    files = []
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append(attr.t)
    for tensor in tensors:
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        candidate = path.parent / location
        if Path(location).is_absolute() or ".." in Path(location).parts:
            raise DataError(f"{path}: external data location {location!r} is outside the model's folder; refusing")
        current = candidate
        while current != path.parent and current != current.parent:
            if current.is_symlink():
                raise DataError(f"{path}: external data {location!r} goes through a symbolic link; refusing")
            current = current.parent
        if not candidate.resolve().is_relative_to(folder):
            raise DataError(f"{path}: external data {location!r} resolves outside the model's folder; refusing")
        files.append(candidate)
    return files


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model's metadata properties, JSON values decoded."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    result: dict[str, Any] = {}
    for entry in proto.metadata_props:
        try:
            result[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            result[entry.key] = entry.value
    return result


def ort_session(path: str | os.PathLike[str], threads: int | None = None, providers: list[str] | None = None):
    """An InferenceSession with explicit providers (checked), no spinning threads, safe external data."""
    import onnxruntime as ort

    check_external_data(path)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    wanted = providers or ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    if session.get_providers()[0] != wanted[0]:
        raise BenchmarkError(f"ONNX Runtime fell back to {session.get_providers()[0]} instead of {wanted[0]}")
    return session
