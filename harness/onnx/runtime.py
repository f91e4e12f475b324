"""Load ONNX files safely and run them with ONNX Runtime.

External data must sit inside the model's folder (no absolute paths, ``..`` or symbolic links);
sessions get explicit providers, checked after creation so a silent fallback is an error, and
non-spinning worker threads (spinning ORT threads slow any PyTorch work in the same process).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry import BenchmarkError, DataError

if TYPE_CHECKING:
    from harness.data.preprocess import Preprocess


def check_external_data(path: str | os.PathLike[str]) -> list[Path]:
    """Refuse external-data locations outside the model's folder or through symbolic links."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    path = Path(path)
    if path.is_symlink():
        raise DataError(f"{path} is a symbolic link; refusing to load it")
    folder = path.parent.resolve()
    proto = load_proto(path)
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


def load_proto(path: str | os.PathLike[str]) -> Any:
    """The ONNX graph (without external data); a file that is not one is a :class:`DataError`."""
    import onnx

    if not Path(path).is_file():
        raise DataError(f"ONNX file {str(path)!r} does not exist")
    try:
        return onnx.load(str(path), load_external_data=False)
    except MemoryError:
        raise
    except Exception as exc:  # protobuf's DecodeError and friends: truncated, damaged or not ONNX
        raise DataError(f"{str(path)!r} is not a readable ONNX model ({type(exc).__name__}: "
                        f"{str(exc).strip()[:120]}); it is truncated, damaged or another format. Re-export it "
                        "with 'harness export'") from None


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model's metadata properties, JSON values decoded."""
    proto = load_proto(path)
    result: dict[str, Any] = {}
    for entry in proto.metadata_props:
        try:
            result[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            result[entry.key] = entry.value
    return result


HARNESS_KEYS = ("input_size", "mean", "std")


def harness_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a file ``harness export`` wrote, after checking it is one: harness's keys, an
    image input called ``input`` with the recorded channel count, an output called ``logits``."""
    proto = load_proto(path)
    meta = read_onnx_metadata(path)
    fix = "export the model with 'harness export' (it writes these)"
    missing = [k for k in HARNESS_KEYS if k not in meta]
    if missing:
        raise DataError(f"{path} has no harness metadata ({', '.join(missing)} missing); {fix}")
    inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    outputs = [o.name for o in proto.graph.output]
    if [i.name for i in inputs] != ["input"] or outputs != ["logits"]:
        raise DataError(f"{path} has inputs {[i.name for i in inputs]} and outputs {outputs}; harness files have "
                        f"one input 'input' and one output 'logits'; {fix}")
    dims = inputs[0].type.tensor_type.shape.dim
    channels = dims[1].dim_value if len(dims) == 4 else None
    if channels is None or (channels and channels != int(meta.get("channels", 3))):
        raise DataError(f"{path}: its input has shape {[d.dim_value or d.dim_param for d in dims]}, but its metadata "
                        f"says {meta.get('channels', 3)} channels; {fix}")
    onnx_temperature(path, meta)  # every reader (check-onnx, robustness, load_onnx) refuses a damaged one alike
    return meta


TEMPERATURE_RANGE = (0.01, 100.0)
"""Temperatures harness accepts in a file: fitted ones are near 1 (0.5-5 in practice); outside this
range the calibrated probabilities are NaN (1e-300) or uniform (1e308), so the file is damaged."""


def onnx_temperature(path: str | os.PathLike[str], meta: dict[str, Any]) -> float | None:
    """The temperature a harness ONNX file records (None when it has none), checked: dividing
    logits by zero, a negative, a non-finite or an absurd number silently reverses or destroys
    the probabilities."""
    value = meta.get("temperature")
    if value is None:
        return None
    low, high = TEMPERATURE_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise DataError(f"{path}: its metadata 'temperature' is {value!r}, not a positive number between {low:g} and "
                        f"{high:g}; re-export it with 'harness export'")
    return float(value)


def onnx_preprocess(path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> Preprocess:
    """The preprocessing a harness ONNX file records (``meta``: its :func:`harness_metadata`), checked:
    a malformed value (a mean that is not a list of numbers, a size that is not a positive integer) is
    a :class:`DataError` saying so, not a comparison that fails later for no visible reason."""
    from harness.data.preprocess import Preprocess

    meta = harness_metadata(path) if meta is None else meta
    size, channels = meta.get("input_size"), meta.get("channels", 3)
    fix = "re-export it with 'harness export'"
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(f"{path} has malformed preprocessing metadata: input_size is {size!r}, not a positive "
                        f"integer; {fix}")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DataError(f"{path} has malformed preprocessing metadata: channels is {channels!r}, not 1 or 3; {fix}")
    stats = {}
    for key in ("mean", "std"):
        value = meta[key]
        numbers = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  and math.isfinite(v) for v in value)
        if not numbers or len(value) != channels or (key == "std" and min(value) <= 0):
            want = f"a list of {channels} finite numbers" + (" above 0" if key == "std" else "")
            raise DataError(f"{path} has malformed preprocessing metadata: {key} is {value!r}, not {want}; {fix}")
        stats[key] = tuple(float(v) for v in value)
    return Preprocess(input_size=size, channels=channels, mean=stats["mean"], std=stats["std"],
                      channels_last=False)


def ort_session(path: str | os.PathLike[str], threads: int | None = None, providers: list[str] | None = None):
    """An InferenceSession with explicit providers (checked), no spinning threads, safe external data."""
    import onnxruntime as ort

    check_external_data(path)
    from harness.environment import use_threads

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or use_threads()  # ORT's own default is every core, quota or not
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    wanted = providers or ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception as exc:  # ORT's own errors have no common base; an invalid graph is the file's fault
        raise DataError(f"ONNX Runtime cannot load {path}: {str(exc).strip().splitlines()[0][:200]}; re-export it "
                        "with 'harness export'") from None
    if session.get_providers()[0] != wanted[0]:
        raise BenchmarkError(f"ONNX Runtime fell back to {session.get_providers()[0]} instead of {wanted[0]}")
    return session
