"""A user's own images: ``<root>/<split>/<class>/<image>``, decoded once into memory.

Each image is decoded once (harness's decoder: upright by its EXIF orientation, 8-bit RGB),
its centre square resized to ``image_size``, so a whole split becomes one uint8 tensor and the
training loop never touches an image file again.
"""

from __future__ import annotations

from pathlib import Path

from registry import DataError, ImageSplit

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _decode(path: Path, size: int):
    """harness's own decoder (EXIF orientation applied, 16-bit images scaled, JPEGs at reduced
    scale), so this plugin's pixels match a ``--data`` folder's."""
    from harness.data.decode import decode_file

    try:
        return decode_file(path, size).transpose(2, 0, 1)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for damaged files
        raise DataError(f"imagefolder: cannot decode {path} ({type(exc).__name__}: {str(exc)[:120]})") from None


def load_imagefolder(split: str, root: Path, download: bool = False, image_size: int | None = None) -> ImageSplit:
    import numpy as np
    import torch

    size = image_size or 224
    split_dir = root / split
    if not split_dir.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise DataError(f"imagefolder: no {split!r} folder in {root} (found: {', '.join(present) or 'nothing'}); "
                        "expected <data-dir>/train/<class>/*.png and <data-dir>/test/<class>/*.png")
    train_dir = root / "train"
    class_names = class_folders(train_dir if train_dir.is_dir() else split_dir)
    unknown = sorted(set(class_folders(split_dir)) - set(class_names))
    if unknown:
        raise DataError(f"imagefolder: {split} has classes missing from train: {', '.join(unknown)}")
    images, labels = [], []
    for label, name in enumerate(class_names):
        folder = split_dir / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in EXTENSIONS and path.is_file():
                images.append(_decode(path, size))
                labels.append(label)
    if not images:
        raise DataError(f"imagefolder: no images ({', '.join(sorted(EXTENSIONS))}) under {split_dir}")
    return ImageSplit(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64),
                      tuple(class_names))
