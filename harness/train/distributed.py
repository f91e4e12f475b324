"""Data-parallel fine-tuning under torchrun: one process per device, DistributedDataParallel.

``torchrun --nproc-per-node N -m harness finetune ...`` starts N copies of the command; torchrun
sets RANK, WORLD_SIZE and LOCAL_RANK, and :func:`current` joins them into one process group (gloo on
CPU, nccl on CUDA, one GPU per local rank). Every rank builds the same global batch order and
augmentations from the same seeded generator and trains on its slice of each global batch, so an
epoch has the steps of a single process at the global batch size and DDP's gradient average is the
global batch's gradient. Epoch statistics are summed over ranks; validation runs on every rank on
identical weights, so every rank takes the same best-epoch decision. Rank 0 alone writes
checkpoints and registers the version; the others receive its reference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job."""

    rank: int
    world: int
    local_rank: int
    backend: str

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def describe(self) -> dict[str, object]:
        return {"world_size": self.world, "backend": self.backend}


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher) with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current(device: str = "auto") -> Dist | None:
    """This process's :class:`Dist` (joining the process group on first call), or None when alone."""
    if not launched():
        return None
    import torch.distributed as td

    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not td.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        td.init_process_group(backend)
    return Dist(td.get_rank(), td.get_world_size(), local, td.get_backend())


def wrap(model: nn.Module, dist: Dist) -> nn.Module:
    """``model`` in DistributedDataParallel (parameters broadcast from rank 0 at construction)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [dist.local_rank] if dist.backend == "nccl" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module DDP wraps (state dicts and checkpoints are the plain model's)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def all_sum(values: list[float]) -> list[float]:
    """``values`` summed over every rank (unchanged when not distributed)."""
    import torch.distributed as td

    if not td.is_available() or not td.is_initialized():
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    if td.get_backend() == "nccl":
        tensor = tensor.cuda()
    td.all_reduce(tensor)
    return tensor.cpu().tolist()


def weights_identical(model: nn.Module) -> bool:
    """Whether every rank holds bit-identical parameters and buffers (the elementwise max and min
    over ranks coincide)."""
    import torch.distributed as td

    flat = torch.cat([t.detach().double().flatten() for t in unwrap(model).state_dict().values()
                      if t.is_floating_point()])
    high, low = flat.clone(), flat.clone()
    td.all_reduce(high, op=td.ReduceOp.MAX)
    td.all_reduce(low, op=td.ReduceOp.MIN)
    return bool(torch.equal(high, low))


T = TypeVar("T")


def share(value: T, dist: Dist) -> T:
    """Rank 0's ``value`` on every rank (our own processes' data, sent over the process group)."""
    import torch.distributed as td

    box: list[Any] = [value if dist.main else None]  # other ranks' values are ignored: rank 0's arrive
    td.broadcast_object_list(box, src=0)
    return box[0]


def finish() -> None:
    """Wait for every rank, then leave the process group (so torchrun's processes exit together)."""
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.barrier()
        td.destroy_process_group()
