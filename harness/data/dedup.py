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
   unit norm: blind to brightness and contrast) and projected on its 48 principal components;
2. candidates: each image's ``K_NEAREST`` nearest descriptors, exactly (all pairs by matrix products
   over the blocks on and above the diagonal), kept where the cosine similarity is >= ``MIN_SIM``;
3. align: each candidate pair is registered (shift and scale, sub-pixel: Lucas-Kanade, inverse
   compositional) on 16x16 copies, measured there, and the few within ``COARSE_LIMIT`` again on
   the 32x32 copies. Where one image holds less detail (a copy down-scaled to 60%), both are
   brought down to its size and blurred in proportion, and the pair stands only if it is that
   image's closest (at 17 px many trousers look alike);
4. measure: **the largest local difference**. Brightness and contrast are matched (gain within
   ``GAIN``, offset within ``OFFSET``, fitted where the brighter image is not white, its
   prediction clipped at white), the residual is averaged by a Gaussian (sigma 1.5 px of the
   32 px copy: JPEG noise averages away, a logo or a strap does not) and its largest absolute
   value, in intensity units (0 = identical, 1 = black against white), is the pair's distance.
   Pairs within ``NEAR_LIMIT`` whose colours also agree (``COLOUR_MAD``) are near copies,
   reported closest first by that distance.

``benchmarks/near_copies.py`` plants each transformation on real Fashion-MNIST files: recall 0.97 or
more for each, no false pair among 6,000 clean images (28 px PNG or 64-160 px JPEG). Limit: on all
70,000 Fashion-MNIST images it reports 143 pairs; the 99 below 0.022 all look like the same
photograph, but some of those above are two garments of one cut and shade that differ only by a
fine print, stripes or dots, which the blur needed for JPEG at quality 50 averages away. 17-19 s
on 2 cores (the thumbnail distance it replaced: 21-22 s).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MEASURE = "largest local difference"
"""What a near pair's distance is: see the module's docstring, stage 4."""
WORK = 32
"""Side of the greyscale copies every image is compared at."""
K_NEAREST = 8
"""Candidates per image: a copy is among the nearest descriptors of its original (measured: first
for 94% of 2 px shifts, within 8 for 99%), and each candidate costs an alignment."""
MIN_SIM = 0.9
"""Cosine similarity of descriptors below which a neighbour is not even a candidate (a 5% crop of
a 100 px photo, re-scaled, measured 0.90-0.94)."""
NEAR_LIMIT = 0.025
"""Largest local difference (0..1) at or below which a pair is a near copy: 98.5% of planted JPEG
re-compressions of 28 px garments at quality 50-75 are within it (95% within 0.022), and a JPEG at
quality 85 of a flat colour with noise measured 0.024; near it, some Fashion-MNIST pairs are
different garments (a plain pullover and a polka-dot one at 0.0249)."""
GAIN = (0.87, 1.15)
"""Contrast changes a copy may have (brightness +-10% is a gain of 0.9-1.1): wider, and a grey and a
white garment of the same cut pass, the white one's texture lost where it saturates."""
OFFSET = 0.1
"""Brightness a copy may have gained or lost (0..1): with a free offset, a grey and a white
pullover filling the frame matched as one (Fashion-MNIST has such pairs)."""
COLOUR_MAD = 0.06
"""Mean absolute difference of the 8x8 chroma thumbnails (R-G, B-G, 0..1) above which two images
share a brightness pattern in other hues and are not copies."""
COARSE_LIMIT = 0.04
"""The same distance measured on 16x16 copies, above which a candidate is not looked at closely
(every planted copy measured was below 0.033)."""
BLUR = 1.5
MARGIN = 4
BLOCK = 4096
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
    native = torch.as_tensor(native)
    distance = _distances(g, native, centre, lo, hi)
    ok = (distance <= NEAR_LIMIT) & _best_of_blurred(native, lo, hi, distance)
    if chroma is not None:
        c = torch.as_tensor(chroma, dtype=torch.float32)
        ok &= (c[lo] - c[hi]).abs().mean((1, 2, 3)) <= COLOUR_MAD
    order = distance[ok].argsort(stable=True)
    return [Pair(a, b, round(d, 4)) for a, b, d in zip(lo[ok][order].tolist(), hi[ok][order].tolist(),
                                                        distance[ok][order].tolist(), strict=True)]


def _best_of_blurred(native: Any, lo: Any, hi: Any, distance: Any, ratio: float = 1.25) -> Any:
    """Which pairs stand: all whose images hold the same detail; of a pair where one holds less
    (compared blurred, see ``_matched``), only one within ``ratio`` of that image's closest pair. At
    17 px (a 28 px garment down-scaled to 60%) many trousers look alike: measured on Fashion-MNIST,
    a down-scaled copy is nearer its original than anything else, but 37 in 300 were also within
    NEAR_LIMIT of another garment."""
    import torch

    na, nb = native[lo].clamp(max=WORK), native[hi].clamp(max=WORK)
    mixed = torch.maximum(na, nb) > 1.15 * torch.minimum(na, nb)
    if not mixed.any():
        return torch.ones_like(mixed)
    low = torch.where(na < nb, lo, hi)
    best = torch.full((int(native.numel()),), float("inf"))
    best = best.scatter_reduce(0, lo, distance, "amin").scatter_reduce(0, hi, distance, "amin")
    return ~mixed | (distance <= ratio * best[low])


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


def _interp(coords: Any, n: int, edges: bool = True) -> Any:
    """(P, L, n) cubic (Keys, a=-0.5) weights that sample a length-n signal at ``coords`` (P, L),
    pixel indexes; outside it, the edge pixels repeat (``edges``) or zeros."""
    import torch

    base = coords.floor()
    frac = coords - base
    out = torch.zeros(*coords.shape, n)
    for offset in (-1, 0, 1, 2):
        d = (frac - offset).abs()
        w = torch.where(d <= 1, (1.5 * d - 2.5) * d * d + 1, ((-0.5 * d + 2.5) * d - 4) * d + 2)
        tap = base + offset
        if not edges:
            w = torch.where((tap >= 0) & (tap <= n - 1), w, 0.0)
        out.scatter_add_(2, tap.clamp(0, n - 1).long()[..., None], w[..., None])
    return out


def _warp(b: Any, p: Any, m: int, edges: bool = True) -> Any:
    """``b`` (P, n, n) sampled at T(x) = (1 + s) x + t over the window ``m`` pixels in from the
    edges (x centred); ``p`` = (tx, ty, s). Separable, so two batched matrix products."""
    n = b.shape[-1]
    c = _centred(n, m)
    ys = (1 + p[:, 2:3]) * c + p[:, 1:2] + (n - 1) / 2
    xs = (1 + p[:, 2:3]) * c + p[:, 0:1] + (n - 1) / 2
    return _interp(ys, n, edges) @ b @ _interp(xs, n, edges).transpose(1, 2)


def _centred(n: int, m: int) -> Any:
    import torch

    return torch.arange(m, n - m, dtype=torch.float32) - (n - 1) / 2


def _descriptors(g: Any, centre: Any, background: Any, dims: int = 48) -> Any:
    """(N, D) unit vectors: each copy re-centred on its centroid, blurred, its central 26x26 pooled
    to 16x16, zero-mean and unit-norm, then projected on the data's ``dims`` principal components
    (as good for ranking neighbours as all 256 numbers, measured, and 4x cheaper to compare)."""
    import torch
    import torch.nn.functional as F

    out = []
    for start in range(0, len(g), PAIRS):
        part = g[start:start + PAIRS] - background[start:start + PAIRS, None, None]
        p = torch.cat([centre[start:start + PAIRS], torch.zeros(len(part), 1)], 1)
        moved = _blur(_warp(part, p, 0, edges=False), 1.0)[:, 3:-3, 3:-3]
        out.append(F.adaptive_avg_pool2d(moved[:, None], 16).flatten(1))
    d = torch.cat(out)
    d = F.normalize(d - d.mean(1, keepdim=True), dim=1)
    if len(d) > 4 * dims:
        mean = d.mean(0)
        _, _, v = torch.pca_lowrank(d - mean, q=dims, center=False, niter=3)
        d = F.normalize((d - mean) @ v, dim=1)
    return d


def _candidates(d: Any) -> tuple[Any, Any]:
    """Pairs (lo < hi) where one is among the other's ``K_NEAREST`` with similarity >= MIN_SIM:
    exact, by matrix products over the blocks on and above the diagonal (each block serves its
    rows and, transposed, its columns: half the products of whole rows)."""
    import torch

    n = len(d)
    k = min(K_NEAREST, n - 1)
    best = torch.full((n, k), -2.0)
    where = torch.zeros((n, k), dtype=torch.long)
    for i in range(0, n, BLOCK):
        rows = torch.arange(i, min(n, i + BLOCK))
        for j in range(i, n, BLOCK):
            cols = torch.arange(j, min(n, j + BLOCK))
            sims = d[rows] @ d[cols].T
            if i == j:
                sims.fill_diagonal_(-2.0)
            _merge(best, where, rows, sims, cols, k)
            if j > i:
                _merge(best, where, cols, sims.T, rows, k)
    row = torch.arange(n)[:, None].expand(-1, k)[best >= MIN_SIM]
    col = where[best >= MIN_SIM]
    keys = torch.unique(torch.minimum(row, col) * n + torch.maximum(row, col))
    return keys // n, keys % n


def _merge(best: Any, where: Any, rows: Any, sims: Any, cols: Any, k: int) -> None:
    """Fold a block's top ``k`` per row into the running top ``k`` of those rows."""
    import torch

    value, index = _top(sims, k)
    value = torch.cat([best[rows], value], 1)
    index = torch.cat([where[rows], cols[index]], 1)
    top, at = value.topk(k, dim=1)
    best[rows] = top
    where[rows] = index.gather(1, at)


def _top(sims: Any, k: int, group: int = 32) -> tuple[Any, Any]:
    """``sims.topk(k, dim=1)``, exactly, five times faster: the maximum of each run of ``group``
    columns is one cheap pass; the top k lie in the k runs with the largest maxima, so only those
    are ranked (``sims`` may be a transposed view: the runs are then taken down its columns)."""
    import torch

    rows, cols = sims.shape
    k = min(k, cols)
    if cols % group or cols <= group * k:
        return sims.topk(k, dim=1)
    if sims.stride(1) == 1:
        peaks = sims.reshape(rows, cols // group, group).amax(2)
    else:
        peaks = sims.T.reshape(cols // group, group, rows).amax(1).T
    runs = peaks.topk(k, dim=1).indices
    index = (runs[:, :, None] * group + torch.arange(group)).flatten(1)
    value, at = sims.gather(1, index).topk(k, dim=1)
    return value, index.gather(1, at)


def _distances(g: Any, native: Any, centre: Any, lo: Any, hi: Any) -> Any:
    """The largest local difference of each pair (lo[i], hi[i]) once aligned: first at 16x16 for
    all (cheap), then at 32x32 for those within ``COARSE_LIMIT`` (about one candidate in ten on
    Fashion-MNIST); the others keep their coarse distance, which is already too large."""
    import torch

    n = g.shape[-1]
    coarse = _blur(g, 2.0).reshape(len(g), n // 2, 2, n // 2, 2).mean((2, 4))
    dist, moves = [], []
    for start in range(0, len(lo), PAIRS):
        a, b = lo[start:start + PAIRS], hi[start:start + PAIRS]
        p = torch.cat([(centre[b] - centre[a]) / 2, torch.zeros(len(a), 1)], 1)
        p = _align(coarse[a], coarse[b], p, 2, 3)
        dist.append(_residual(coarse[a], coarse[b], p, 2, 1))
        moves.append(torch.cat([p[:, :2] * 2, p[:, 2:]], 1))
    distance, p = (torch.cat(dist), torch.cat(moves)) if dist else (torch.zeros(0), torch.zeros(0, 3))
    close = (distance <= COARSE_LIMIT).nonzero()[:, 0]
    for start in range(0, len(close), PAIRS):
        which = close[start:start + PAIRS]
        ra, rb, sigma = _matched(g, native, lo[which], hi[which])
        q = p[which]
        for s in sigma.unique().tolist():
            k = (sigma == s).nonzero()[:, 0]
            q[k] = _align(_blur(ra[k], s), _blur(rb[k], s), q[k], MARGIN, 2)
            distance[which[k]] = _residual(ra[k], rb[k], q[k], MARGIN, 2, s)
    return distance


def _matched(g: Any, native: Any, a: Any, b: Any) -> tuple[Any, Any, Any]:
    """The copies of a and b and the blur (sigma) to compare them at: ``BLUR``, but where one holds
    less detail than the other and than ``WORK`` (a copy down-scaled to 60%), both are brought down
    to its size and the blur grows in proportion, so that detail the copy lost does not count."""
    import torch
    import torch.nn.functional as F

    ra, rb = g[a], g[b]
    sigma = torch.full((len(a),), BLUR)
    na, nb = native[a].clamp(max=WORK), native[b].clamp(max=WORK)
    small, large = torch.minimum(na, nb), torch.maximum(na, nb)
    mixed = large > 1.15 * small
    for size, top in torch.unique(torch.stack([small, large], 1)[mixed], dim=0).tolist():
        which = (mixed & (small == size) & (large == top)).nonzero()[:, 0]
        sigma[which] = BLUR * top / size
        for copies in (ra, rb):
            down = F.interpolate(copies[which][:, None], size=(size, size), mode="bilinear", antialias=True)
            up = F.interpolate(down, size=g.shape[-2:], mode="bicubic", align_corners=False)
            copies[which] = up[:, 0].clamp(0, 1)
    return ra, rb, sigma


def _align(a: Any, b: Any, p: Any, m: int, iters: int) -> Any:
    """Refine p = (tx, ty, s) so that b(T_p(x)) ~ alpha a(x) + beta over the window (Gauss-Newton,
    inverse compositional: the Jacobian is a's, computed once; photometric terms solved with it)."""
    import torch

    n = a.shape[-1]
    c = _centred(n, m)
    yy, xx = c[:, None].expand(-1, len(c)).flatten(), c[None, :].expand(len(c), -1).flatten()
    gx = ((a[:, m:n - m, m + 1:n - m + 1] - a[:, m:n - m, m - 1:n - m - 1]) / 2).flatten(1)
    gy = ((a[:, m + 1:n - m + 1, m:n - m] - a[:, m - 1:n - m - 1, m:n - m]) / 2).flatten(1)
    win = a[:, m:n - m, m:n - m].flatten(1)
    jac = torch.stack([gx, gy, xx * gx + yy * gy, win, torch.ones_like(win)], 1)
    h = jac @ jac.transpose(1, 2)
    h = h + torch.eye(5) * (1e-6 * h.diagonal(dim1=1, dim2=2).mean(1) + 1e-9)[:, None, None]
    hinv = torch.linalg.inv(h)
    for _ in range(iters):
        q = (hinv @ (jac @ _warp(b, p, m).flatten(1)[:, :, None]))[:, :, 0]
        alpha = q[:, 3].clamp_min(0.2)
        dt = (q[:, 0:2] / alpha[:, None]).clamp(-1.5, 1.5)
        ds = (q[:, 2] / alpha).clamp(-0.05, 0.05)
        one = 1 + p[:, 2]
        p = torch.stack([(p[:, 0] - one * dt[:, 0] / (1 + ds)).clamp(-6, 6),
                         (p[:, 1] - one * dt[:, 1] / (1 + ds)).clamp(-6, 6),
                         (one / (1 + ds) - 1).clamp(-0.15, 0.15)], 1)
    return p


def _residual(a: Any, b: Any, p: Any, m: int, crop: int, sigma: float = 0.0) -> Any:
    """Largest absolute residual once b is warped onto a and the brighter of the two is predicted
    from the other (gain within GAIN, clipped at white, as a brightness change saturates), over
    the window less ``crop`` pixels a side (where a blur saw the window's edge). With ``sigma``, a
    and b are sharp: the gain is fitted on the pixels that are not white and the residual blurred
    (a blurred edge of a clipped area is not a clipped value, so fitting blurred copies misleads)."""
    import torch

    n = a.shape[-1]
    w = n - 2 * m
    x = a[:, m:n - m, m:n - m].flatten(1)
    y = _warp(b, p, m).flatten(1)
    up = _gain(x, y, torch.ones_like(x))[0] >= _gain(y, x, torch.ones_like(x))[0]
    src, dst = torch.where(up, x, y), torch.where(up, y, x)
    gain, offset = _gain(src, dst, (dst < 0.98).float() if sigma else torch.ones_like(x))
    r = (dst - (gain.clamp(*GAIN) * src + offset).clamp(0, 1)).view(-1, w, w)
    if sigma:
        r = _blur(r, sigma)
    return r[:, crop:w - crop, crop:w - crop].abs().flatten(1).max(1).values


def _gain(x: Any, y: Any, weight: Any) -> tuple[Any, Any]:
    """Least squares y ~ gain x + offset over the weighted pixels, (P, 1) each; the offset is
    refitted for the gain clamped to GAIN, and held within OFFSET."""
    total = weight.sum(1, keepdim=True).clamp_min(1)
    xm, ym = (weight * x).sum(1, keepdim=True) / total, (weight * y).sum(1, keepdim=True) / total
    spread = (weight * (x - xm) ** 2).sum(1, keepdim=True).clamp_min(1e-9)
    gain = (weight * (x - xm) * (y - ym)).sum(1, keepdim=True) / spread
    return gain, (ym - gain.clamp(*GAIN) * xm).clamp(-OFFSET, OFFSET)
