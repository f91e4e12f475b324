"""Image corruptions after ImageNet-C (Hendrycks & Dietterich, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR 2019), for a task's own small images.

Adapted, not copied: the severity parameters are the authors' own for 32 px images, from their
CIFAR-10-C generator (``hendrycks/robustness``, ``ImageNet-C/create_c/make_cifar_c.py``, Apache-2.0),
not ImageNet-C's 224 px ones (ImageNet-C's Gaussian noise at severity 1, sigma 0.08, is CIFAR-10-C's
severity 3; its blur sigma 1-6 px would wipe out a 28 px image). Where a parameter is a length in
pixels (the blur's sigma) it is scaled by ``side / 32``, so a 28 px Fashion-MNIST image is blurred
over the same fraction of its width as a 32 px CIFAR image (and a 224 px one by 7x); pixelate's
factor is already relative to the side; noise, contrast, brightness and JPEG quality act per pixel
and are kept as published.

Every function takes and returns a ``uint8`` batch ``(N, C, H, W)`` (1 or 3 channels: greyscale
images are corrupted as greyscale, as a camera would) and is vectorised over the batch, except
JPEG and pixelate, which go through Pillow image by image as the reference does (~20 us each at
28 px). Randomness comes from a generator seeded by (seed, corruption, severity) alone, so a
result does not depend on which other corruptions ran or in which order. The output is rounded
back to ``uint8`` (the reference saves its images as 8-bit files too).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from registry import UsageError

SEVERITIES = (1, 2, 3, 4, 5)
REFERENCE_SIDE = 32
"""The image side the published severity parameters are for (CIFAR-10-C)."""


@dataclass(frozen=True)
class Corruption:
    """One corruption: its five severity parameters (as published for 32 px) and what it does."""

    name: str
    family: str  # noise | blur | digital (ImageNet-C's grouping; weather needs textures we do not ship)
    params: tuple[float, ...]
    apply: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]  # float [0, 1] NCHW -> same
    spatial: bool = False  # the parameter is a length in pixels: scaled by side / 32
    on_uint8: bool = False  # ``apply`` takes and returns uint8 (Pillow's codecs)

    def parameter(self, severity: int, side: int) -> float:
        """The parameter at ``severity`` (1..5) for images ``side`` pixels wide."""
        value = self.params[severity - 1]
        return value * side / REFERENCE_SIDE if self.spatial else value


def _gaussian_noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(scale=sigma, size=x.shape).astype(np.float32)


def _shot_noise(x: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    return (rng.poisson(x * photons) / photons).astype(np.float32)


def _impulse_noise(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper on a fraction ``amount`` of the values, half each (scikit-image's ``s&p``)."""
    hit = rng.random(x.shape) < amount
    salt = (rng.random(x.shape) < 0.5).astype(np.float32)
    return np.where(hit, salt, x)


def _gaussian_blur(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """scikit-image's ``gaussian`` (what the reference calls): edge pixels repeated, 4 sigma kernel."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)


def _contrast(x: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    means = x.mean(axis=(2, 3), keepdims=True)
    return (x - means) * factor + means


def _brightness(x: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """HSV value + ``shift``, hue and saturation kept. With H and S fixed every RGB channel is
    proportional to V, so the reference's RGB -> HSV -> RGB round trip is a per-pixel scaling by
    V'/V (black pixels, S = 0, become grey V'); a greyscale image's value is the pixel itself."""
    value = x.max(axis=1, keepdims=True)
    brighter = np.clip(value + shift, 0.0, 1.0)
    scale = np.divide(brighter, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, x * scale, brighter)


def _pil_images(batch: np.ndarray, each: Callable[[object], object]) -> np.ndarray:
    """``each`` over every image of a uint8 NCHW batch as a Pillow image ('L', or 'RGB' for 3 channels;
    other channel counts one channel at a time)."""
    from PIL import Image

    out = np.empty_like(batch)
    for i, image in enumerate(batch):
        if image.shape[0] == 3:
            done = each(Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), "RGB"))
            out[i] = np.asarray(done).transpose(2, 0, 1)
        else:
            for c, plane in enumerate(image):
                out[i, c] = np.asarray(each(Image.fromarray(np.ascontiguousarray(plane), "L")))
    return out


def _jpeg(batch: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    def once(image: object) -> object:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(quality))  # type: ignore[attr-defined]
        buffer.seek(0)
        return Image.open(buffer)  # decoded when the caller reads its pixels

    return _pil_images(batch, once)


def _pixelate(batch: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    height, width = batch.shape[2:]
    small = (max(1, int(width * factor)), max(1, int(height * factor)))
    return _pil_images(batch, lambda image: image.resize(small, Image.Resampling.BOX)  # type: ignore[attr-defined]
                       .resize((width, height), Image.Resampling.BOX))


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("gaussian_noise", "noise", (0.04, 0.06, 0.08, 0.09, 0.10), _gaussian_noise),
    Corruption("shot_noise", "noise", (500, 250, 100, 75, 50), _shot_noise),
    Corruption("impulse_noise", "noise", (0.01, 0.02, 0.03, 0.05, 0.07), _impulse_noise),
    Corruption("gaussian_blur", "blur", (0.4, 0.6, 0.7, 0.8, 1.0), _gaussian_blur, spatial=True),
    Corruption("contrast", "digital", (0.75, 0.5, 0.4, 0.3, 0.15), _contrast),
    Corruption("brightness", "digital", (0.05, 0.1, 0.15, 0.2, 0.3), _brightness),
    Corruption("jpeg", "digital", (80, 65, 58, 50, 40), _jpeg, on_uint8=True),
    Corruption("pixelate", "digital", (0.95, 0.9, 0.85, 0.75, 0.65), _pixelate, on_uint8=True),
)}
"""The suite, in ImageNet-C's order within each family; parameters from CIFAR-10-C (32 px)."""


def check_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` when every one is a known corruption; else one line listing the known ones."""
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise UsageError(f"{{param}}: unknown corruption {unknown[0] if unknown else '(none given)'!r}; known: "
                         + ", ".join(CORRUPTIONS), param="corruptions")
    return names


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``images`` (uint8 NCHW) with corruption ``name`` at ``severity`` (1..5); same shape and dtype.
    Deterministic: the same (images, name, severity, seed) always give the same bytes."""
    if severity not in SEVERITIES:
        raise UsageError(f"{{param}} must be one of {SEVERITIES}, not {severity!r}", param="severity")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise UsageError(f"corruptions take a uint8 (N, C, H, W) batch, not {images.dtype} {images.shape}")
    corruption = CORRUPTIONS[check_names((name,))[0]]
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), severity])
    value = corruption.parameter(severity, int(images.shape[-1]))
    if corruption.on_uint8:
        return corruption.apply(images, value, rng)
    out = corruption.apply(images.astype(np.float32) / 255.0, value, rng)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
