"""Decoding a user's images to training tensors: RGB, shorter side resized to the size, centre
crop, uint8 (N, 3, S, S), on every core.

JPEG files are decoded at a reduced scale when they are much larger than the target (Pillow's
``draft``: the DCT skips the detail the resize would throw away), which is most of the cost for
photos. Threads suffice: Pillow releases the GIL while it decodes and resizes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from registry import DataError


def to_square(image: Any, size: int) -> Any:
    """An RGB ``size`` x ``size`` uint8 array (H, W, 3): shorter side to ``size``, centre crop."""
    import numpy as np
    from PIL import Image

    if image.format == "JPEG":
        image.draft("RGB", (size, size))
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decode_all(source: Any, items: Sequence[Any], size: int, out: Any = None, workers: int | None = None) -> Any:
    """Every item of ``source`` as a uint8 array (N, 3, size, size), written into ``out`` when given
    (a memory-mapped cache file); an image that does not decode is a :class:`DataError` naming it
    (``harness data check`` lists them all). A progress bar shows on a terminal."""
    import numpy as np

    from harness.progress import Progress

    out = np.empty((len(items), 3, size, size), dtype=np.uint8) if out is None else out

    def one(index: int) -> None:
        item = items[index]
        try:
            with source.decode(item) as image:
                out[index] = to_square(image, size).transpose(2, 0, 1)
        except DataError:
            raise
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for damaged files
            raise DataError(f"cannot decode {item} ({type(exc).__name__}: {str(exc)[:120]}); run 'harness data "
                            "check' to list every damaged file, or remove it") from None

    bar = Progress().bar(len(items), f"decoding {len(items)} images at {size}px", unit="img")
    try:
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for _ in pool.map(one, range(len(items))):
                bar.update(1)
    finally:
        bar.close()
    return out
