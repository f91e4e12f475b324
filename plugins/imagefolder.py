"""A user's own images: ``<root>/<split>/<class>/<image>``, decoded once into memory.

Images are decoded with ``torchvision.io`` (no PIL in the loop), converted to RGB, resized so the
shorter side is ``image_size`` and centre-cropped to a square, so every split is one uint8 tensor.
"""

from __future__ import annotations

from pathlib import Path

from registry import DataError, ImageSplit

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_imagefolder(split: str, root: Path, download: bool = False, image_size: int | None = None) -> ImageSplit:
    import torch
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2 import functional as F

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
            if path.suffix.lower() not in EXTENSIONS:
                continue
            try:
                img = decode_image(str(path), mode=ImageReadMode.RGB)
            except RuntimeError as exc:
                raise DataError(f"imagefolder: cannot decode {path} ({exc})") from None
            img = F.center_crop(F.resize(img, [size], antialias=True), [size, size])
            images.append(img)
            labels.append(label)
    if not images:
        raise DataError(f"imagefolder: no images ({', '.join(sorted(EXTENSIONS))}) under {split_dir}")
    return ImageSplit(torch.stack(images), torch.tensor(labels, dtype=torch.int64), tuple(class_names))
