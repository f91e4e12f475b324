"""Exact and near duplicates among images, within a split and across splits (leakage).

Exact: the same bytes (a file copied) or the same pixels (a tensor dataset). Near: the same picture
after re-encoding (JPEG), down-scaling, a shift of a pixel or two, a small crop or a brightness
change. Why not the usual tools: perceptual hashes spend most of their bits on the background of
small images, and whole-image distances between thumbnails (what this module did before) put a
copy shifted by 2 px further away than a different garment: on Fashion-MNIST every item is centred
and scaled alike, so the nearest *different* image is very close, and copies are told apart only by
detail, once aligned. Hence four stages over 32x32 greyscale copies:

1. describe: every copy is re-centred on its intensity centroid (which moves with a shift), blurred,
   its central part (which a shift or crop leaves intact) reduced to 16x16, normalised (zero mean,
   unit norm: blind to brightness and contrast) and projected on its 64 principal components;
2. candidates: each image's ``K_NEAREST`` nearest descriptors, exactly (all pairs by matrix products
   in blocks), kept where the cosine similarity is at least ``MIN_SIM``;
3. align: each candidate pair is registered (shift and scale, sub-pixel: Lucas-Kanade, inverse
   compositional, coarse 16x16 then 32x32), after bringing the sharper of two small images down to
   the other's resolution (a down-scaled copy has lost detail its original still has);
4. measure: **the largest local difference**. Brightness and contrast are matched (gain 0.8-1.25,
   clipped at white), the residual is averaged by a Gaussian (sigma 1.5 px of the 32 px copy, which
   averages JPEG noise away but keeps a logo or a strap), and its largest absolute value, in
   intensity units (0 = identical, 1 = black against white), is the pair's distance. Pairs within
   ``NEAR_LIMIT`` whose colours also agree (``COLOUR_MAD``) are near copies, reported closest first
   by that distance.

On Fashion-MNIST (70,000 images, 2 cores) this takes about 20 s; ``benchmarks/near_copies.py``
measures recall per transformation, precision on clean data and the time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WORK = 32
"""Side of the greyscale copies every image is compared at."""
K_NEAREST = 10
"""Candidates per image: a copy is among the nearest descriptors of its original (measured: rank 0
for 94% of 2 px shifts, within 8 for 99%), but every image has some."""
MIN_SIM = 0.9
"""Cosine similarity of descriptors below which a neighbour is not even a candidate."""
NEAR_LIMIT = 0.025
"""Largest local difference (0..1) at or below which a pair is a near copy."""
GAIN = (0.8, 1.25)
"""Contrast changes a copy may have: wider, and a dark and a light garment of the same cut pass."""
COLOUR_MAD = 0.06
"""Mean absolute difference of the 8x8 chroma thumbnails (R-G, B-G, 0..1) above which two images
share a brightness pattern in other hues and are not copies."""
BLUR = 1.5
MARGIN = 4
BLOCK = 1024
PAIRS = 4096


@dataclass(frozen=True)
class Pair:
    """Two images (indexes into the combined list) and their distance (0 for exact copies)."""

    a: int
    b: int
    distance: float


def exact_groups(keys: Sequence[bytes]) -> list[list[int]]:
    """Indexes that share a content key (file bytes or pixels), groups of two or more."""
    groups: dict[bytes, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        groups[key].append(index)
    return [g for g in groups.values() if len(g) > 1]


def near_pairs(grey: Any, native: Any, chroma: Any = None,
               exclude: set[tuple[int, int]] | None = None) -> list[Pair]:
    """Near copies, closest first. ``grey``: (N, 32, 32) in 0..1; ``native``: (N,) the shorter side
    of each original in pixels (what detail it can hold); ``chroma``: (N, 2, 8, 8) R-G and B-G, or
    None for greyscale data; ``exclude``: pairs ``(a, b)``, a < b, already known (exact copies)."""
    import torch

    g = torch.as_tensor(grey, dtype=torch.float32)
    if len(g) < 2:
        return []
    centre, background = _centroids(g)
    lo, hi = _candidates(_descriptors(g, centre, background))
    if exclude:
        keep = torch.tensor([(a, b) not in exclude for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])
        lo, hi = lo[keep], hi[keep]
    distance = _distances(g, torch.as_tensor(native), centre, lo, hi)
    ok = distance <= NEAR_LIMIT
    if chroma is not None:
        c = torch.as_tensor(chroma, dtype=torch.float32)
        ok &= (c[lo] - c[hi]).abs().mean((1, 2, 3)) <= COLOUR_MAD
    order = distance[ok].argsort(stable=True)
    return [Pair(a, b, round(d, 4)) for a, b, d in zip(lo[ok][order].tolist(), hi[ok][order].tolist(),
                                                        distance[ok][order].tolist(), strict=True)]


def _blur(x: Any, sigma: float) -> Any:
    """Gaussian blur of (N, n, n), edges replicated, as two matrix products (fast on CPU, where a
    one-channel convolution is not)."""
    import torch

    n = x.shape[-1]
    r = max(1, int(3 * sigma + 0.5))
    taps = torch.arange(-r, r + 1)
    w = torch.exp(-taps.float() ** 2 / (2 * sigma * sigma))
    k = torch.zeros(n, n)
    for i in range(n):
        k[i].index_add_(0, (i + taps).clamp(0, n - 1), w / w.sum())
    y = (x.reshape(-1, n) @ k.T).reshape(x.shape).transpose(-1, -2)
    return (y.reshape(-1, n) @ k.T).reshape(x.shape).transpose(-1, -2)


def _centroids(g: Any) -> tuple[Any, Any]:
    """(N, 2) intensity centroids (x, y), in pixels from the centre, of the difference from the
    background (the median of the border), and that background."""
    import torch

    n = g.shape[-1]
    border = torch.cat([g[:, 0], g[:, -1], g[:, :, 0], g[:, :, -1]], 1).median(1).values
    w = (g - border[:, None, None]).abs()
    c = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
    mass = w.sum((1, 2)).clamp_min(1e-6)
    return torch.stack([(w.sum(1) * c).sum(1) / mass, (w.sum(2) * c).sum(1) / mass], 1), border


def _interp(coords: Any, n: int) -> Any:
    """(P, L, n) cubic (Keys, a=-0.5) weights that sample a length-n signal at ``coords`` (P, L),
    pixel indexes, edges replicated."""
    import torch

    base = coords.floor()
    frac = coords - base
    out = torch.zeros(*coords.shape, n)
    for offset in (-1, 0, 1, 2):
        d = (frac - offset).abs()
        w = torch.where(d <= 1, (1.5 * d - 2.5) * d * d + 1, ((-0.5 * d + 2.5) * d - 4) * d + 2)
        out.scatter_add_(2, (base + offset).clamp(0, n - 1).long()[..., None], w[..., None])
    return out


def _warp(b: Any, p: Any, m: int) -> Any:
    """``b`` (P, n, n) sampled at T(x) = (1 + s) x + t over the window ``m`` pixels in from the
    edges (x centred); ``p`` = (tx, ty, s). Separable, so two batched matrix products."""
    n = b.shape[-1]
    c = _centred(n, m)
    ys = (1 + p[:, 2:3]) * c + p[:, 1:2] + (n - 1) / 2
    xs = (1 + p[:, 2:3]) * c + p[:, 0:1] + (n - 1) / 2
    return _interp(ys, n) @ b @ _interp(xs, n).transpose(1, 2)


def _centred(n: int, m: int) -> Any:
    import torch

    return torch.arange(m, n - m, dtype=torch.float32) - (n - 1) / 2
