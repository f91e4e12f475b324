"""Which candidates a selection runs: expand names and wildcards, and check their weights exist.

A candidate is a backbone (trained from scratch), a backbone with a weight tag (its file must be
in the torch hub cache or downloadable), or a registry version (``name@v``, ``name:alias``).
Unavailable candidates are skipped with the reason and the exact place to put the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.models.build import weights_cache_path
from registry import UnknownNameError, UsageError, keys

if TYPE_CHECKING:
    from harness.context import Context


@dataclass(frozen=True)
class Candidate:
    """A candidate reference and whether its weights can be had (else why, and where to put them)."""

    ref: str
    available: bool = True
    reason: str | None = None
    place: str | None = None


def expand(ctx: Context, patterns: Sequence[str]) -> list[str]:
    """Names, wildcards over backbones and weight tags (``resnet*``, ``*.tv_in1k``), registry refs."""
    catalogue = ctx.catalogue
    refs: list[str] = []
    for pattern in patterns:
        pattern = pattern.strip()
        if not pattern:
            continue
        if pattern.startswith("zoo:"):  # every model of a zoo built here (harness zoo build)
            from harness.train.zoo import members

            refs.extend(members(ctx, pattern[4:]))
            continue
        if any(c in pattern for c in "*?["):
            if "." in pattern:
                found = [f"{b.name}.{w.tag}" for b, w in catalogue.list_weights(pattern)]
            else:
                found = [b.name for b in catalogue.backbones.list(pattern)]
            if not found:
                raise UsageError(f"{{param}} pattern {pattern!r} matches no backbone", param="candidates")
            refs.extend(found)
        elif "@" in pattern or ":" in pattern or pattern.partition(".")[0] not in catalogue.backbones:
            try:
                refs.append(ctx.store.get(pattern).ref)
            except UnknownNameError:
                catalogue.backbone(pattern)  # raises the backbone suggestion if it is neither
        else:
            backbone, tag = catalogue.backbone(pattern)  # validates the tag
            refs.append(f"{backbone.name}.{tag.tag}" if tag else backbone.name)  # timm/x is timm_x
    return list(dict.fromkeys(refs))


def check_available(ctx: Context, ref: str, offline: bool) -> Candidate:
    """Whether ``ref``'s weights can be had now (cached, stored, or downloadable when online)."""
    catalogue = ctx.catalogue
    base, _, tag_name = ref.partition(".")
    if "@" in ref or ":" in ref or base not in catalogue.backbones:
        version = ctx.store.get(ref)
        artifact = version.artifacts.get(keys.ROLE_WEIGHTS)
        if artifact is None or not ctx.store.blobs.verify(artifact.sha256):
            return Candidate(ref, False, "its weights file is missing or altered ('harness registry check')")
        return Candidate(ref)
    if not tag_name:
        return Candidate(ref)
    _, tag = catalogue.backbone(ref)
    path = weights_cache_path(tag)
    if path is not None and path.is_file():
        return Candidate(ref)
    place = f"{tag.url} -> {path}"
    if offline:
        return Candidate(ref, False, "pretrained weights are not cached and --offline was given", place)
    problem = _unreachable(tag.url) if tag.url else "no download URL"
    if problem:
        return Candidate(ref, False, f"pretrained weights are not cached and cannot be downloaded ({problem})",
                         place)
    return Candidate(ref, True, None, place)


def _unreachable(url: str, timeout: float = 5.0) -> str | None:
    """``None`` when ``url`` answers a HEAD request, else the reason (no network, 404...)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))
    return None

