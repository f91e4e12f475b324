"""Which candidates a selection runs: expand names and wildcards, and check their weights exist.

A candidate is a backbone (trained from scratch), a backbone with a weight tag (its file must be
in the torch hub cache or downloadable), or a registry version (``name@v``, ``name:alias``).
Unavailable candidates are skipped with the reason and the exact place to put the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.models.availability import check_weights
from registry import UnknownNameError, UsageError, keys
from registry.catalogue import check_wildcard

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
            from harness.jobs.zoo import members

            refs.extend(members(ctx, pattern[4:]))
            continue
        if any(c in pattern for c in "*?["):
            check_wildcard(pattern, "candidates")
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
                if "@" in pattern or ":" in pattern:  # a registry reference: its own error (no version 9 of x)
                    raise
                catalogue.backbone(pattern)  # raises the backbone suggestion if it is neither
        else:
            backbone, tag = catalogue.backbone(pattern)  # validates the tag
            refs.append(f"{backbone.name}.{tag.tag}" if tag else backbone.name)  # timm/x is timm_x
    return list(dict.fromkeys(refs))


def check_available(ctx: Context, ref: str, offline: bool) -> Candidate:
    """Whether ``ref``'s weights can be had now (cached, stored, or downloadable when online)."""
    catalogue = ctx.catalogue
    base = ref.partition(".")[0]
    if "@" in ref or ":" in ref or base not in catalogue.backbones:
        version = ctx.store.get(ref)
        artifact = version.artifacts.get(keys.ROLE_WEIGHTS)
        if artifact is None or not ctx.store.blobs.verify(artifact.sha256):
            return Candidate(ref, False, "its weights file is missing or altered ('harness registry check')")
        return Candidate(ref)
    _, tag = catalogue.backbone(ref)
    if tag is None:  # no weight tag named: nothing to fetch
        return Candidate(ref)
    check = check_weights(tag, offline)
    return Candidate(ref, check.available, check.reason, check.place)
