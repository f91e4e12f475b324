"""Helpers of the fault-injection suite (tests/faults): damage files in the ways disks and users do,
make ONNX files that are valid but not harness's, and assert a failure is clean."""

from __future__ import annotations

import pickle
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from registry.store import ModelStore


def damage(source: Path | None, target: Path, how: str) -> Path:
    """Write a damaged copy of ``source`` to ``target`` (they may be the same file)."""
    data = source.read_bytes() if source is not None and source.exists() else b"x" * 4096
    if how == "zero":
        out = b""
    elif how == "garbage":
        out = bytes((i * 37 + 11) % 256 for i in range(len(data)))
    elif how == "truncated":
        out = data[: max(1, len(data) // 3)]
    elif how == "flip":  # same size, one byte changed: only a hash notices
        middle = len(data) // 2
        out = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
    elif how == "pickle-payload":
        import os

        out = pickle.dumps({"weight": os.system})
    elif how == "not-a-state-dict":
        import io

        import torch

        buffer = io.BytesIO()
        torch.save([1, 2, 3], buffer)
        out = buffer.getvalue()
    else:
        raise ValueError(how)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.chmod(0o644)
    target.write_bytes(out)
    return target


def onnx_variant(good: Path, target: Path, how: str) -> Path:
    """A copy of a harness ONNX file that is damaged (``zero``/``garbage``/``truncated``) or valid ONNX
    but not what harness wrote: input or output renamed, metadata stripped, another channel count."""
    import onnx

    if how in ("zero", "garbage", "truncated"):
        return damage(good, target, how)
    proto = onnx.load(str(good))
    if how == "renamed-input":
        old = proto.graph.input[0].name
        proto.graph.input[0].name = "pixels"
        for node in proto.graph.node:
            node.input[:] = ["pixels" if n == old else n for n in node.input]
    elif how == "renamed-output":
        old = proto.graph.output[0].name
        proto.graph.output[0].name = "scores"
        for node in proto.graph.node:
            node.output[:] = ["scores" if n == old else n for n in node.output]
    elif how == "no-metadata":
        del proto.metadata_props[:]
    elif how == "channels":
        proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1
    else:
        raise ValueError(how)
    onnx.save(proto, str(target))
    return target


def assert_clean_failure(result, exit_code: int, needle: str) -> None:
    """The command failed with ``exit_code``, one ``Error:`` line naming ``needle``, no traceback.
    ``result`` is click's Result or a CompletedProcess."""
    output = getattr(result, "output", None) or (result.stdout or "") + (result.stderr or "")
    code = getattr(result, "exit_code", None)
    code = result.returncode if code is None else code
    assert code == exit_code, output[-2000:]
    assert "Traceback" not in output and "internal error" not in output, output[-2000:]
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output[-2000:]
    assert needle in errors[0], errors[0]


def store_refs(home: Path | None = None, with_metrics: bool = False) -> list:
    """The store's versions (and, asked, their metrics and tags): what a failure must leave alone."""
    with ModelStore(home) as store:
        assert store.check() == [], store.check()
        if with_metrics:
            return [(v.ref, dict(v.metrics), dict(v.tags), sorted(v.artifacts)) for v in store.list()]
        return [v.ref for v in store.list()]


def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root in a container that allows it, as CI is)."""
    probe = Path("/tmp") / "harness-mount-probe"
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], capture_output=True)
    return ok


@contextmanager
def small_disk(folder: Path, size_kb: int) -> Iterator[Path]:
    """A real filesystem of ``size_kb`` (tmpfs) mounted at ``folder``: writes past it fail with ENOSPC."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave_kb: int) -> None:
    """Fill the filesystem holding ``folder`` until about ``leave_kb`` remain."""
    free = shutil.disk_usage(folder).free
    ballast = max(0, free - leave_kb * 1024)
    with open(folder / "ballast", "wb") as f:
        f.write(b"\0" * ballast)


def read_only(folder: Path) -> None:
    """Remount the tmpfs at ``folder`` read-only: even root then gets EROFS."""
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
