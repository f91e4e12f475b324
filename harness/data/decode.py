"""Decoding a user's images to training tensors: upright (EXIF orientation), 8-bit RGB (16-bit and
float images scaled, not clipped), the centre square resized to the size, uint8 (N, 3, S, S).

Why it is fast (``benchmarks/decode_cache.py``: 20,000 Fashion-MNIST garments written as JPEGs
of 64-400 px, decoded at 64 px on 2 cores other jobs kept busy: about half the CPU per image of a
plain Pillow loop, and 1.7-2.1x its wall rate):

- JPEGs are decoded by libjpeg-turbo through simplejpeg (:mod:`harness.data.jpeg`) at the smallest
  of its M/8 scales that still covers the size: the DCT skips the detail the resize would throw
  away, and Pillow's header parsing in Python (40-70 us of its ~290 us per photo here) is skipped.
  Other formats, and JPEGs simplejpeg refuses, go through Pillow (``draft`` for JPEGs);
- only the centre square is resampled, straight to the size (``resize(box=...)``), instead of
  resizing the whole image and cropping; the EXIF orientation is applied to that small square;
- files are decoded in worker *processes* on every usable core (affinity and cgroup quota), in
  chunks (:mod:`harness.data.decode_workers` says why not ``multiprocessing``): for a small image
  a quarter or more of Pillow's time is Python that holds the GIL, so threads queue for it (two
  threads measured ~10% more CPU per image than one here, and testers saw 1.6x). A worker costs a
  start-up (~0.2 CPU-s), so jobs under :data:`PROCESS_MIN_IMAGES` and Hugging Face sources (rows,
  not files) are decoded in threads of this process.

torchvision.io's ``decode_jpeg`` has no reduced-scale decoding (it decodes every pixel, then
resizes); PyTurboJPEG needs a system libturbojpeg; simplejpeg's wheels bundle libjpeg-turbo.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from registry import DataError

ORIENTATION_TAG = 0x0112
HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
"""Pillow modes with more than 8 bits per sample; ``convert("RGB")`` clips them (a 16-bit photo
comes out white), so :func:`as_rgb` scales them instead."""
PROCESS_MIN_IMAGES = 3000
"""Fewer images than this are decoded in threads: a worker takes ~0.3 s to start (~0.2 CPU-s), in
which this process decodes ~1,000 small photos itself; on 2 idle cores it pays off in wall time
from ~2,700 photos if threads reach ~1.4 cores (an estimate: no idle machine to measure on), and at
1,200 photos on a busy machine harness cost 0.8x the plain loop's CPU per image against 0.5x at
20,000 (measured)."""
CHUNK = 48
"""Images per task: enough that a pipe round trip is a small share, few enough that the progress
bar moves and the last chunk does not leave a core idle for long."""


@functools.cache
def _transposes() -> dict[int, Any]:
    from PIL import Image

    t = Image.Transpose
    return {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE, 6: t.ROTATE_270,
            7: t.TRANSVERSE, 8: t.ROTATE_90}


def orientation(image: Any) -> int:
    """The EXIF orientation (1..8; 1 is upright), 1 when absent or unreadable (a damaged EXIF
    block is no reason to refuse the pixels). For JPEG this reads the header only."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # Pillow raises assorted errors for malformed EXIF
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def as_rgb(image: Any) -> Any:
    """``image`` in mode RGB, with high-bit-depth samples scaled to 0..255 instead of clipped:
    16-bit (``I;16*``, and ``I`` holding values up to 65535, which is how Pillow has opened 16-bit
    PNGs) keep their top 8 bits, as Pillow does itself for 48-bit RGB PNGs; ``I`` with larger
    values is read as 32-bit; float ``F`` in 0..1 is scaled by 255, larger floats like integers."""
    if image.mode == "RGB":
        return image
    if image.mode not in HIGH_BIT_MODES:
        return image.convert("RGB")
    import numpy as np
    from PIL import Image

    pixels = np.asarray(image)
    top = float(pixels.max()) if pixels.size else 0.0
    if image.mode == "F":
        scale = 255.0 if top <= 1.0 else (1.0 if top <= 255 else 1 / 257)
        grey = np.clip(np.nan_to_num(pixels.astype(np.float32) * scale), 0, 255).round().astype(np.uint8)
    else:
        shift = 8 if top <= 65535 else 23  # 16-bit data, or non-negative 32-bit
        grey = (np.clip(pixels.astype(np.int64), 0, None) >> shift).clip(0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def to_square(image: Any, size: int) -> Any:
    """An upright RGB ``size`` x ``size`` uint8 array (H, W, 3) of a Pillow image: the centre
    square (of the shorter side) resized to ``size``."""
    import numpy as np

    turn = orientation(image)
    if image.format in ("JPEG", "MPO"):  # MPO: phones' multi-picture JPEGs
        image.draft("RGB", (size, size))  # decode at 1/2, 1/4 or 1/8 scale, still >= size
    return np.asarray(_square(as_rgb(image), size, turn), dtype=np.uint8)


def _square(image: Any, size: int, turn: int) -> Any:
    """The centre square of ``image`` resized to ``size`` (bilinear, antialiased), then turned by
    EXIF orientation ``turn``: the 8 transposes map the centre square onto itself, so turning the
    small result is exact and cheap."""
    from PIL import Image

    w, h = image.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    square = image.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)
    return square.transpose(_transposes()[turn]) if turn != 1 else square


def decode_file(path: Any, size: int) -> Any:
    """An image file as :func:`to_square` makes it; JPEGs through :mod:`harness.data.jpeg`
    (libjpeg-turbo at reduced scale), everything else, and JPEGs it refuses, through Pillow."""
    import io

    import numpy as np
    from PIL import Image

    from harness.data import jpeg

    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == jpeg.JPEG_MAGIC:
        image = jpeg.decode(data, size)
        if image is not None:
            return np.asarray(_square(image, size, jpeg.orientation(data)))[..., :3]
    register_plugins()
    with Image.open(io.BytesIO(data)) as image:
        return to_square(image, size)


def usable_cores() -> int:
    """Cores this process may use: ``--threads``/``HARNESS_THREADS``, else its CPU affinity capped
    by a cgroup CPU quota (v1 or v2; see :func:`harness.environment.use_threads`)."""
    from harness.environment import use_threads

    return use_threads()


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def decode_failure(exc: BaseException) -> str:
    """Why an image did not decode, in plain words: Pillow's ``cannot identify image file
    <_io.BytesIO object at 0x...>`` names the in-memory copy it was handed, not anything the user has."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can read: another format, or damaged from its start"
    text = _OBJECT_REPR.sub("the file", str(exc)).strip()
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _why(item: Any, exc: Exception) -> str:
    try:
        empty = isinstance(item, (str, os.PathLike)) and os.path.getsize(item) == 0
    except OSError:
        empty = False
    reason = "an empty file, 0 bytes: not an image" if empty else decode_failure(exc)
    return f"cannot decode {item} ({reason}); run 'harness data check' to list every damaged file, or remove it"


def decode_all(source: Any, items: Sequence[Any], size: int, out: Any = None, workers: int | None = None,
               progress: Any = None) -> Any:
    """Every item of ``source`` as a uint8 array (N, 3, size, size), written into ``out`` when given
    (a memory-mapped cache file; else a new array, which may be backed by an unlinked file in
    ``/dev/shm`` or the temp folder); an image that does not decode is a :class:`DataError` naming it
    (``harness data check`` lists them all). A bar shows on a terminal, lines in a log, through
    ``progress`` (default: :func:`harness.progress.current`, the calling context's)."""
    import numpy as np

    from harness.progress import current

    workers = max(1, min(workers or usable_cores(), len(items) or 1))
    files = getattr(source, "kind", None) in ("folder", "manifest")
    bar = (progress or current()).bar(len(items), f"decoding {len(items)} images at {size}px", unit="img")
    try:
        if files and workers > 1 and len(items) >= PROCESS_MIN_IMAGES:
            out = _in_processes([str(item) for item in items], size, out, workers, bar)
        else:
            out = np.empty((len(items), 3, size, size), dtype=np.uint8) if out is None else out
            _in_threads(source, items, size, out, workers, bar)
    finally:
        bar.close()
    return out


def _in_threads(source: Any, items: Sequence[Any], size: int, out: Any, workers: int, bar: Any) -> None:
    """Decode in this process (threads when ``workers`` > 1): files as the worker processes do,
    other items (Hugging Face rows) with ``source.decode``."""
    files = getattr(source, "kind", None) in ("folder", "manifest")

    def pixels(item: Any) -> Any:
        if files:
            return decode_file(item, size)
        with source.decode(item) as image:
            return to_square(image, size)

    def one(index: int) -> None:
        try:
            out[index] = pixels(items[index]).transpose(2, 0, 1)
        except DataError:
            raise
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for damaged files
            raise DataError(_why(items[index], exc)) from None
        bar.update(1)

    if workers == 1:
        for index in range(len(items)):
            one(index)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(one, range(len(items))):
            pass


def _in_processes(paths: list[str], size: int, out: Any, workers: int, bar: Any) -> Any:
    """Decode files in ``workers`` worker processes (:mod:`harness.data.decode_workers`), a chunk
    at a time, each writing its rows straight into a shared ``.npy`` file: ``out`` itself when it
    is one (the cache's), else a scratch one, copied into ``out`` or (no ``out``) returned as it is,
    unlinked. Only a few bytes cross the pipes, so a worker never waits for this process to read its
    pixels. The first damaged file stops the rest."""
    import tempfile

    import numpy as np

    from harness.data.decode_workers import run_chunks

    shared = _whole_npy_map(out, (len(paths), 3, size, size))
    scratch = _scratch_dir(len(paths) * 3 * size * size)
    target = str(out.filename) if shared else tempfile.mkstemp(".npy", "harness-decode-", scratch)[1]
    try:
        if not shared:
            np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=(len(paths), 3, size, size)).flush()
        chunks = [(start, paths[start:start + CHUNK]) for start in range(0, len(paths), CHUNK)]
        error = run_chunks(chunks, size, target, workers, lambda count: bar.update(count))
        if error is not None:
            raise DataError(error)
        if shared:
            return out
        rows = np.load(target, mmap_mode="r+")
        if out is None:  # the map outlives the file's name: no copy
            return rows.view(np.ndarray)
        for start in range(0, len(paths), 1024):
            out[start:start + 1024] = rows[start:start + 1024]
        return out
    finally:
        _mapped.cache_clear()  # this process decoded into the map too: let it go
        if not shared:
            os.unlink(target)


def _scratch_dir(nbytes: int) -> str | None:
    """``/dev/shm`` (memory) when it has room to spare, else None (the temp folder): a scratch file
    in memory is never written back to disk."""
    try:
        stat = os.statvfs("/dev/shm")
    except (OSError, AttributeError):  # no /dev/shm (macOS), no statvfs (Windows)
        return None
    return "/dev/shm" if stat.f_bavail * stat.f_frsize > 4 * nbytes else None


def _whole_npy_map(out: Any, shape: tuple[int, ...]) -> bool:
    """Whether ``out`` maps a whole ``.npy`` file of ``shape`` (as ``np.lib.format.open_memmap``
    returns), so that workers can write into that file's rows; a slice of a map is not."""
    import mmap

    import numpy as np

    return (isinstance(out, np.memmap) and isinstance(out.base, mmap.mmap) and out.shape == shape
            and out.dtype == np.uint8 and out.flags.c_contiguous and str(out.filename).endswith(".npy"))


def decode_into(target: str, start: int, paths: Sequence[str], size: int) -> str | None:
    """Decode ``paths`` into rows ``start..`` of the ``.npy`` file ``target``; None, or why the first
    file that does not decode failed: a worker process's task (a message pickles safely where an
    exception might not)."""
    rows = _mapped(target)
    for i, path in enumerate(paths):
        try:
            rows[start + i] = decode_file(path, size).transpose(2, 0, 1)
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for damaged files
            return _why(path, exc)
    return None


@functools.lru_cache(maxsize=1)
def _mapped(target: str) -> Any:
    import numpy as np

    return np.load(target, mmap_mode="r+")


@functools.cache
def register_plugins() -> frozenset[str]:
    """Register the optional format plugins that are installed (pillow-heif for HEIC/HEIF, the
    ``heif`` extra); returns the extensions they add. Once per process."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return frozenset()
    register_heif_opener()
    return frozenset({".heic", ".heif", ".hif"})


@functools.cache
def readable_extensions() -> frozenset[str]:
    """File extensions ``--data`` reads: Pillow's core formats, ``.jfif`` (JPEG), AVIF where this
    Pillow reads it (11.3+ built with libavif), HEIC/HEIF with pillow-heif."""
    from PIL import features

    found = {".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
    if features.check("avif"):
        found.add(".avif")
    return frozenset(found | register_plugins())


UNREADABLE_HINTS = {".heic": "pip install 'imgcls-harness[heif]'", ".heif": "pip install 'imgcls-harness[heif]'",
                    ".hif": "pip install 'imgcls-harness[heif]'",
                    ".avif": "needs Pillow >= 11.3 built with AVIF: pip install -U Pillow"}
"""What to do about an image format this install cannot read."""
