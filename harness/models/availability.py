"""Can a weight tag's file be had now? Asked before any work: a fine-tune whose pretrained weights
are neither cached nor downloadable says so before its data loads (a minute on a large task), and
select skips such a candidate with the exact file to place.

Downloads are forbidden by ``--offline``, by ``HARNESS_OFFLINE=1`` (every download harness makes),
and for the Hugging Face Hub also by its own ``HF_HUB_OFFLINE=1``. Otherwise a HEAD request with a
short timeout tells whether the file's URL answers. Messages link the file itself (the Hub's
``.../resolve/main/model.safetensors``), not a repository page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.environment import offline_by_environment
from registry import DataError, WeightTag

if TYPE_CHECKING:
    from harness.models.sources import ModelSource

PROBE_TIMEOUT_S = 5.0


def download_urls(tag: WeightTag) -> list[str]:
    """The URLs ``tag``'s file is downloaded from, the preferred first (a Hub repository: its
    safetensors file, then its pickle; else the tag's own URL)."""
    if tag.hub_id:
        from harness.models import hub

        return [hub.file_url(tag.hub_id, name) for name in hub.FILES]
    return [tag.url] if tag.url else []


@dataclass(frozen=True)
class WeightsCheck:
    """Whether a tag's weights can be had; if not, why, and which file to place where."""

    available: bool
    reason: str | None = None
    place: str | None = None  # "<file URL> -> <local path>"


def check_weights(tag: WeightTag, offline: bool = False) -> WeightsCheck:
    """Cached, or downloadable now (``offline``: the ``--offline`` flag forbids trying)."""
    from harness.models.build import weights_cache_path

    path = weights_cache_path(tag)
    if path is not None and path.is_file():
        return WeightsCheck(True)
    urls = download_urls(tag)
    place = f"{urls[0] if urls else 'its file'} -> {path}"
    forbidden = "--offline" if offline else offline_by_environment(hub=bool(tag.hub_id))
    if forbidden:
        return WeightsCheck(False, f"pretrained weights are not cached and {forbidden} forbids downloading", place)
    if not urls:
        return WeightsCheck(False, "pretrained weights are not cached and have no download URL", place)
    problems = []
    for url in urls:
        problem = unreachable(url)
        if problem is None:
            return WeightsCheck(True, None, place)
        problems.append(problem)
    return WeightsCheck(False, f"pretrained weights are not cached and cannot be downloaded ({problems[0]})", place)


def require_weights(source: ModelSource, offline: bool = False) -> None:
    """Raise a :class:`DataError` naming the file and where to place it when ``source``'s
    pretrained weights can be had neither from the cache nor by downloading."""
    if source.tag is None or source.weights_file is not None or source.version is not None:
        return
    check = check_weights(source.tag, offline)
    if not check.available:
        raise DataError(f"{source.ref}: {check.reason}; place the file: {check.place}")


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` when ``url`` answers a HEAD request, else the reason (no network, 404...)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))
    return None
