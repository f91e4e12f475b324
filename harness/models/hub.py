"""Weights on the Hugging Face Hub (timm's tags): find them in the Hub's cache, download when online.

We resolve and read the file ourselves rather than let a model library do it, so that a
``pytorch_model.bin`` is read with ``torch.load(weights_only=True)`` like every other weights file
(safetensors preferred), and so that a cached file never waits on a network check first.

Air-gapped: a file placed at ``$HF_HUB_CACHE/models--<org>--<name>/snapshots/main/model.safetensors``
(or a whole Hub cache copied from a connected machine) is found without the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from registry import DataError

if TYPE_CHECKING:
    import torch

FILES = ("model.safetensors", "pytorch_model.bin")
"""What a timm Hub repository holds, in the order we prefer them."""


def hub_cache_dir() -> Path:
    """The Hub's cache folder (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _repo_dir(repo_id: str) -> Path:
    """The Hub cache's folder of a model repository (``models--timm--resnet18.a1_in1k``)."""
    return hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"


def placement(repo_id: str) -> Path:
    """Where to place ``repo_id``'s weights by hand so that they count as cached."""
    return _repo_dir(repo_id) / "snapshots" / "main" / FILES[0]


def file_url(repo_id: str, name: str = FILES[0]) -> str:
    """The download URL of ``name`` in ``repo_id`` (``.../resolve/main/model.safetensors``; honours
    ``HF_ENDPOINT``): what to fetch by hand for an air-gapped machine."""
    from huggingface_hub import hf_hub_url

    return str(hf_hub_url(repo_id, name))


def cached_file(repo_id: str) -> Path | None:
    """``repo_id``'s weights file in the Hub's cache, or ``None`` (no network used)."""
    if not _repo_dir(repo_id).is_dir():
        return None  # one stat instead of the Hub client's lookups: `list --tags` asks for ~1,700 tags
    from huggingface_hub import try_to_load_from_cache

    for name in FILES:
        found = try_to_load_from_cache(repo_id, name, cache_dir=hub_cache_dir())
        if isinstance(found, str):
            return Path(found)
    return None


def fetch_file(repo_id: str, label: str) -> Path:
    """The cached weights file of ``repo_id``, downloaded first when it is not cached.

    ``label`` names the weights for the error a user sees when they are neither cached nor
    reachable (offline, ``HF_HUB_OFFLINE=1``, or a repository without weights).
    """
    found = cached_file(repo_id)
    if found is not None:
        return found
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    for name in FILES:
        try:
            return Path(hf_hub_download(repo_id, name, cache_dir=hub_cache_dir()))
        except LocalEntryNotFoundError as exc:  # offline or unreachable: no point trying the other file
            raise DataError(f"weights {label} are not cached and cannot be downloaded ({exc.__class__.__name__}); "
                            f"place {file_url(repo_id)} at {placement(repo_id)}") from None
        except EntryNotFoundError:
            continue
        except OSError as exc:
            raise DataError(f"weights {label} could not be downloaded from {file_url(repo_id, name)} ({exc}); "
                            f"place {file_url(repo_id)} at {placement(repo_id)}") from None
    raise DataError(f"hf.co/{repo_id} has neither {' nor '.join(FILES)}; pick another tag of this backbone")


def load_hub_state_dict(repo_id: str, label: str) -> dict[str, torch.Tensor]:
    """The state dict of ``repo_id``'s weights, read safely (see :func:`harness.models.load_state_dict_file`)."""
    from harness.models.checkpoint import load_state_dict_file

    return load_state_dict_file(fetch_file(repo_id, label))
