"""Device choice and the library versions recorded with every model version."""

from __future__ import annotations

import platform
from typing import Any

from registry import UsageError

DEVICES = ("auto", "cpu", "cuda")


def select_device(name: str = "auto"):
    """``auto`` picks CUDA when present, else CPU; asking for CUDA without one is a user error."""
    import torch

    if name not in DEVICES:
        raise UsageError(f"{{param}} must be one of {', '.join(DEVICES)}", param="device")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("{param} cuda was asked for but no CUDA device is available; use cpu", param="device")
    return torch.device(name)


def device_description(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def library_versions() -> dict[str, Any]:
    import torch
    import torchvision

    import harness

    return {"harness": harness.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "python": platform.python_version()}
