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


def available_memory(device: Any) -> int | None:
    """Bytes free for tensors on ``device`` (CUDA: the device's free memory; CPU: MemAvailable), or
    None where the platform does not say."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_batch_fits(batch_size: int, channels: int, input_size: int, device: Any) -> None:
    """Refuse, before any work, a batch whose input tensors alone (float32, with the augmented and
    channels-last copies training makes: about 4 of them) exceed the free memory: the alternative
    is an out-of-memory kill minutes later."""
    need = 4 * batch_size * channels * input_size * input_size * 4
    free = available_memory(device)
    if free is not None and need > free:
        raise UsageError(f"a batch of {batch_size} images at {input_size}px needs about {need / 2**30:.1f} GiB for its "
                         f"input tensors alone, and {getattr(device, 'type', 'cpu')} has {free / 2**30:.1f} GiB free; "
                         "lower {param} or --input-size", param="batch_size")
