"""Exact and near duplicates among images, within a split and across splits (leakage).

Exact: the same bytes (a file copied) or the same pixels (a tensor dataset). Near: the same picture
after re-encoding, resizing, a little noise or a brightness change. Perceptual hashes (dHash and
friends) are the usual tool for photos, but on 28 px greyscale images their 64 bits are mostly
background, so many different garments collide and the hash alone cannot be trusted. Instead
every image is reduced to an 8x8 greyscale thumbnail (64 numbers, area-averaged, which averages
noise away) and all pairs are compared at once by matrix products in chunks (the exact nearest
pairs, no approximate index to tune); pairs within ``THUMB_RMS`` are then confirmed on 32x32
greyscale copies (``FULL_MAD``), which separates re-encoded copies from merely similar images, and
on colour copies (``COLOUR_MAD``), which separates images sharing a brightness pattern in other hues.
On Fashion-MNIST's 70,000 images this takes about half a minute on 2 cores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

THUMB_RMS = 0.02
"""RMS difference (pixels in 0..1) of the 8x8 thumbnails below which a pair is a candidate."""
FULL_MAD = 0.02
"""Mean absolute difference (0..1) of the 32x32 greyscale copies below which a candidate is a near
duplicate..."""
COLOUR_MAD = 0.06
"""...provided its colour copies differ by less than this: looser, since re-encoding (JPEG's
halved colour resolution) moves colours more than brightness, but it rejects images that share a
brightness pattern in different hues."""
CHUNK = 1024


@dataclass(frozen=True)
class Pair:
    """Two images (indexes into the combined list) and how far apart they are (0 for exact copies)."""

    a: int
    b: int
    distance: float


def exact_groups(keys: Sequence[bytes]) -> list[list[int]]:
    """Indexes that share a content key (file bytes or pixels), groups of two or more."""
    groups: dict[bytes, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        groups[key].append(index)
    return [g for g in groups.values() if len(g) > 1]


def near_pairs(small: object, thumbs: object, exclude: set[tuple[int, int]] | None = None) -> list[Pair]:
    """Near-duplicate pairs: ``thumbs`` is (N, 64) greyscale float in 0..1, ``small`` (N, C*1024)
    colour float in 0..1."""
    import torch

    t = torch.as_tensor(thumbs, dtype=torch.float32)
    s = torch.as_tensor(small, dtype=torch.float32)
    grey = s.reshape(len(s), -1, 1024).mean(1)
    n = len(t)
    sq = (t * t).sum(1)
    limit = THUMB_RMS ** 2 * t.shape[1]
    found = []
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        cols = torch.arange(start, n)  # pairs (i, j) with j > i only: half the work
        d2 = sq[start:stop, None] + sq[None, start:] - 2 * (t[start:stop] @ t[start:].T)
        mask = (d2 <= limit) & (cols[None, :] > torch.arange(start, stop)[:, None])
        rows, offsets = mask.nonzero(as_tuple=True)
        for i, j in zip((rows + start).tolist(), (offsets + start).tolist(), strict=True):
            if exclude and (i, j) in exclude:
                continue
            mad = float((grey[i] - grey[j]).abs().mean())
            if mad <= FULL_MAD and float((s[i] - s[j]).abs().mean()) <= COLOUR_MAD:
                found.append(Pair(i, j, round(mad, 4)))
    return found
