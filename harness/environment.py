"""The machine harness runs on: the device, the memory and CPUs this process may use (a container's
cgroup limits, not only the host's), the thread count, and the library versions recorded with every
model version.

``/proc/meminfo`` and ``os.cpu_count()`` describe the host. In a container the cgroup says what this
process may really use: a 442 MB split read into RAM under a 700 MB limit is an out-of-memory kill,
and two busy threads on a one-CPU quota run slower than one (28 vs 325 img/s measured). So the
free memory is the smaller of the host's and the cgroup's (v2 ``memory.max``/``memory.current``, v1
``memory.limit_in_bytes``/``memory.usage_in_bytes``, at every level up to the mount), and the
default thread count is the CPU affinity capped by the CPU quota (v2 ``cpu.max``, v1
``cpu.cfs_quota_us``/``cpu.cfs_period_us``).
"""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

from registry import UsageError

DEVICES = ("auto", "cpu", "cuda")
THREADS_ENV = "HARNESS_THREADS"
UNLIMITED = 1 << 60
"""cgroup limits at or above this are "no limit" (v1 writes 2^63 rounded down to a page)."""


def select_device(name: str = "auto"):
    """``auto`` picks CUDA when present, else CPU; asking for CUDA without one is a user error.
    Also applies the thread count to torch, which is imported by then."""
    import torch

    if name not in DEVICES:
        raise UsageError(f"{{param}} must be one of {', '.join(DEVICES)}", param="device")
    _torch_threads(use_threads())
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


OFFLINE_ENV = "HARNESS_OFFLINE"
HUB_OFFLINE_ENV = "HF_HUB_OFFLINE"


def offline_by_environment(hub: bool = False) -> str | None:
    """The variable that forbids downloading, as the user would set it (``HARNESS_OFFLINE=1``: every
    download; ``HF_HUB_OFFLINE=1`` too when ``hub``: the Hub's weights, and datasets), or None."""
    names = (OFFLINE_ENV, HUB_OFFLINE_ENV) if hub else (OFFLINE_ENV,)
    return next((f"{name}=1" for name in names
                 if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")), None)


OWN_DISTRIBUTIONS = ("imgcls-harness", "torch", "torchvision")
"""Distributions :func:`library_versions` already records (harness's own is its version)."""
_BUILDER_VERSIONS: dict[str, dict[str, str]] = {}


def builder_versions(backbone: Any) -> dict[str, str]:
    """Versions of the other distributions whose code builds ``backbone``: the plugin's (a third
    party's), and those that define the network's layers (timm for ``timm_*``), found by building it
    on the meta device (no weights, no memory). Recorded with each version and part of select's
    fingerprint, so that upgrading timm or a plugin retrains instead of reusing an old row."""
    if backbone.name not in _BUILDER_VERSIONS:
        import importlib.metadata

        found: dict[str, str] = {}
        info = backbone.plugin
        if info is not None and info.distribution and info.version:
            found[info.distribution] = info.version
        packages = _layer_packages(backbone) - {"torch", "torchvision", "harness", "plugins"}  # recorded already
        mapping = _package_distributions() if packages else {}
        for package in sorted(packages):
            for dist in mapping.get(package, []):
                try:
                    found[dist] = importlib.metadata.version(dist)
                except importlib.metadata.PackageNotFoundError:
                    continue
        _BUILDER_VERSIONS[backbone.name] = {k: v for k, v in sorted(found.items()) if k not in OWN_DISTRIBUTIONS}
    return dict(_BUILDER_VERSIONS[backbone.name])


def _layer_packages(backbone: Any) -> set[str]:
    """The top-level packages of the network's module classes (``timm``, ``torch``...); none when
    its builder cannot build it without weights."""
    import torch

    try:
        with torch.device("meta"):
            model = backbone.builder(10, None)
    except Exception:  # builders that compute with real tensors
        try:
            model = backbone.builder(10, None)
        except Exception:
            return set()
    modules = model.modules() if isinstance(model, torch.nn.Module) else []
    return {type(m).__module__.partition(".")[0] for m in modules}


_PACKAGES: dict[str, list[str]] = {}


def _package_distributions() -> dict[str, list[str]]:
    """importlib's package -> distributions map, read once (it scans every installed distribution)."""
    if not _PACKAGES:
        import importlib.metadata

        _PACKAGES.update(importlib.metadata.packages_distributions())
    return _PACKAGES


# -- memory ----------------------------------------------------------------------------------------


def available_memory(device: Any) -> int | None:
    """Bytes free for tensors on ``device`` (CUDA: the device's free memory; CPU: the smaller of
    the host's MemAvailable and what this process's cgroup still allows), or None where the platform
    does not say."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    found = [v for v in (_host_available(), cgroup_memory_free()) if v is not None]
    return min(found) if found else None


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cgroup_memory_free() -> int | None:
    """Bytes this process's memory cgroup can still grow by before its limit (the tightest level
    from its own cgroup up to the mount), or None without a limit. Clean page cache that nothing
    maps counts as free: the kernel drops it before it kills anyone."""
    free = [_level_free(level, v2) for level, v2 in _cgroup_levels("memory")]
    found = [f for f in free if f is not None]
    return max(0, min(found)) if found else None


def _level_free(level: Path, v2: bool) -> int | None:
    names = (("memory.max", "memory.current", "file", "file_mapped", "file_dirty", "file_writeback") if v2 else
             ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_cache", "total_mapped_file", "total_dirty",
              "total_writeback"))
    limit, usage = _read_int(level / names[0]), _read_int(level / names[1])
    if limit is None or usage is None or limit >= UNLIMITED:
        return None
    stat = _read_stat(level / "memory.stat")
    cache, mapped, dirty, writeback = (stat.get(name, 0) for name in names[2:])
    return limit - usage + max(0, cache - mapped - dirty - writeback)


# -- CPUs and threads ------------------------------------------------------------------------------


def cpu_quota() -> float | None:
    """CPUs' worth of time per period this process's cgroup allows (``1.5``), the tightest level
    up to the mount; None without a quota."""
    found = [q for q in (_level_quota(level, v2) for level, v2 in _cgroup_levels("cpu")) if q is not None]
    return min(found) if found else None


def _level_quota(level: Path, v2: bool) -> float | None:
    """One cgroup folder's CPU quota in CPUs (v2 ``cpu.max`` "quota period", v1 ``cpu.cfs_quota_us``
    and ``cpu.cfs_period_us``); None for "max", -1 or no files."""
    if v2:
        quota, period = [*_read_text(level / "cpu.max").split(), "", ""][:2]
    else:
        quota, period = _read_text(level / "cpu.cfs_quota_us"), _read_text(level / "cpu.cfs_period_us")
    if quota.isdigit() and period.isdigit() and int(quota) > 0 and int(period) > 0:
        return int(quota) / int(period)
    return None


def default_threads() -> tuple[int, str]:
    """(threads, why): the CPUs this process may run on (affinity), capped by the CPU quota rounded up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None and math.ceil(quota) < cpus:
        return max(1, math.ceil(quota)), f"the cgroup CPU quota of {quota:g} CPUs"
    return max(1, cpus), f"{cpus} CPUs in this process's affinity"


def parse_threads(text: str, where: str) -> int:
    """A thread count given by the user (``where`` names the option or variable); a user error
    unless it is a whole number of at least 1."""
    value = text.strip()
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"{where} must be a whole number of threads, at least 1 (got {text!r}); unset it for the "
                         "default (the CPU quota and affinity)")
    return int(value)


def cpu_threads() -> tuple[int, str]:
    """(threads, why): ``--threads``/``$HARNESS_THREADS``, else ``$OMP_NUM_THREADS`` (torch's own
    setting), else :func:`default_threads`."""
    if os.environ.get(THREADS_ENV):
        return parse_threads(os.environ[THREADS_ENV], f"--threads/{THREADS_ENV}"), f"--threads/{THREADS_ENV}"
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) >= 1:
        return int(omp), "OMP_NUM_THREADS"
    return default_threads()


_chosen: int | None = None
_interop_set = False


def use_threads(threads: int | None = None) -> int:
    """Set this process's thread count (``threads``, else the one already chosen here, else
    :func:`cpu_threads`) and return it. Torch's pools are per process, so the count is too: torch
    gets it now when imported (else through ``OMP_NUM_THREADS`` when it is, and again in
    :func:`select_device`), and decoding and ONNX Runtime sessions ask for it here."""
    global _chosen
    if threads is None and _chosen is not None:
        return _chosen
    count = cpu_threads()[0] if threads is None else threads
    if count < 1:
        raise UsageError("{param} must be at least 1", param="threads")
    _chosen = count
    if "torch" in sys.modules:
        _torch_threads(count)
    else:  # torch's OpenMP runtime reads it when torch is imported
        os.environ["OMP_NUM_THREADS"] = str(count)
    return count


def _torch_threads(count: int) -> None:
    """Torch's intra-op threads, and its inter-op threads once, while that is still allowed
    (torch refuses once inter-op work has started; the default then stays)."""
    global _interop_set
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    if not _interop_set:
        _interop_set = True
        try:
            torch.set_num_interop_threads(count)
        except RuntimeError:
            pass


def limits_summary() -> str:
    """One line for ``harness --version``: the threads and memory harness will use, and why."""
    try:
        threads, why = cpu_threads()
        threads_text = f"{threads} thread{'s' if threads > 1 else ''} ({why})"
    except UsageError as exc:
        threads_text = f"threads: {exc}"
    free, limited = available_memory(None), cgroup_memory_free()
    memory = "memory: unknown" if free is None else f"{free / 2**30:.1f} GiB of memory free"
    if limited is not None and free is not None and limited <= free:
        memory += " (cgroup limit)"
    return f"{threads_text}; {memory}"


# -- cgroup files ----------------------------------------------------------------------------------


def _cgroup_levels(controller: str) -> list[tuple[Path, bool]]:
    """(folder, is_v2) of this process's cgroup for ``controller``, innermost first, up to the
    mount point (v2 and v1 hierarchies; a level missing the controller's files reads as no limit)."""
    memberships = _read_text(Path("/proc/self/cgroup")).splitlines()
    levels: list[tuple[Path, bool]] = []
    for mount_root, mount_point, v2 in _cgroup_mounts(controller):
        for line in memberships:
            ident, controllers, path = [*line.split(":", 2), "", ""][:3]
            if (ident == "0" and not controllers) != v2 or (not v2 and controller not in controllers.split(",")):
                continue
            folder = _inside(Path(mount_point), mount_root, path)
            while True:
                levels.append((folder, v2))
                if folder == Path(mount_point) or folder.parent == folder:
                    break
                folder = folder.parent
    return levels


def _cgroup_mounts(controller: str) -> list[tuple[str, str, bool]]:
    """(root inside the hierarchy, mount point, is_v2) of the cgroup mounts that hold ``controller``."""
    mounts = []
    for line in _read_text(Path("/proc/self/mountinfo")).splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 4 or len(fields) < 5:
            continue
        kind, options = fields[dash + 1], fields[dash + 3].split(",")
        point = fields[4].replace("\\040", " ")
        if kind == "cgroup2" or (kind == "cgroup" and controller in options):
            mounts.append((fields[3], point, kind == "cgroup2"))
    return mounts


def _inside(mount_point: Path, mount_root: str, path: str) -> Path:
    """The folder of cgroup ``path`` under a mount of the hierarchy's ``mount_root`` (a container
    often mounts its own cgroup as the root: then the mount point itself)."""
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root.rstrip("/") + "/")):
        path = path[len(mount_root.rstrip("/")):]
    elif mount_root != "/":
        path = "/"
    folder = mount_point / path.lstrip("/")
    return folder if folder.is_dir() else mount_point


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if text == "max":
        return UNLIMITED
    return int(text) if text.isdigit() else None


def _read_stat(path: Path) -> dict[str, int]:
    stat = {}
    for line in _read_text(path).splitlines():
        name, _, value = line.partition(" ")
        if value.strip().isdigit():
            stat[name] = int(value)
    return stat


def check_batch_fits(batch_size: int, channels: int, input_size: int, device: Any) -> None:
    """Refuse, before any work, a batch whose input tensors alone (float32, with the augmented and
    channels-last copies training makes: about 4 of them) exceed the free memory: the alternative
    is an out-of-memory kill minutes later."""
    need = 4 * batch_size * channels * input_size * input_size * 4
    free = available_memory(device)
    if free is not None and need > free:
        raise UsageError(f"a batch of {batch_size} images at {input_size}px needs about {need / 2**30:.1f} GiB for its "
                         f"input tensors alone, and {getattr(device, 'type', 'cpu')} has {free / 2**30:.1f} GiB free; "
                         "lower {param} or {param:input_size}", param="batch_size")
