"""Built-in datasets: CIFAR-10/100, MNIST, Fashion-MNIST, SVHN, a user's image folder, synthetic.

Loaders follow torchvision's on-disk layouts under the data root (``--data-dir``, else
``$HARNESS_DATA``, else the user cache dir), so an existing torchvision data folder works as is.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import harness
from registry import Dataset, ImageSplit

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
                 "7 - seven", "8 - eight", "9 - nine")


def _cifar(name: str, split: str, root: Path, download: bool = False, image_size: int | None = None) -> ImageSplit:
    from plugins.dataset_files import load_cifar

    return load_cifar(name, split, root, download)


def _mnist(name: str, split: str, root: Path, download: bool = False, image_size: int | None = None) -> ImageSplit:
    from plugins.dataset_files import load_mnist_family

    return load_mnist_family(name, split, root, download)


def _svhn(split: str, root: Path, download: bool = False, image_size: int | None = None) -> ImageSplit:
    from plugins.dataset_files import load_svhn

    return load_svhn(split, root, download)


def _imagefolder(split: str, root: Path, download: bool = False, image_size: int | None = None) -> ImageSplit:
    from plugins.imagefolder import load_imagefolder

    return load_imagefolder(split, root, download, image_size)


def _synthetic(split: str, root: Path, download: bool = False, image_size: int | None = None) -> ImageSplit:
    from plugins.synthetic import load_synthetic

    return load_synthetic(split, root, download, image_size)


@harness.hookimpl
def register_datasets(register: Any) -> None:
    register(Dataset(
        name="cifar10", loader=partial(_cifar, "cifar10"), num_classes=10,
        class_names=CIFAR10_CLASSES, image_size=32, channels=3,
        license="unspecified; free for research (Krizhevsky 2009)",
        citation="Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        description="60,000 32x32 colour images in 10 classes (50,000 train / 10,000 test)",
    ))
    register(Dataset(
        name="cifar100", loader=partial(_cifar, "cifar100"), num_classes=100, image_size=32,
        channels=3, license="unspecified; free for research (Krizhevsky 2009)",
        citation="Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        description="60,000 32x32 colour images in 100 fine classes",
    ))
    register(Dataset(
        name="mnist", loader=partial(_mnist, "mnist"), num_classes=10, class_names=MNIST_CLASSES,
        image_size=28, channels=1, license="CC BY-SA 3.0",
        citation="LeCun et al., Gradient-based learning applied to document recognition, 1998",
        homepage="http://yann.lecun.com/exdb/mnist/",
        description="70,000 28x28 greyscale handwritten digits",
    ))
    register(Dataset(
        name="fashion-mnist", loader=partial(_mnist, "fashion-mnist"), num_classes=10,
        class_names=FASHION_CLASSES, image_size=28, channels=1, license="MIT",
        citation="Xiao, Rasul, Vollgraf, Fashion-MNIST, arXiv:1708.07747, 2017",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        description="70,000 28x28 greyscale Zalando article images; also read from Debian's "
                    "dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)",
    ))
    register(Dataset(
        name="svhn", loader=_svhn, num_classes=10, class_names=tuple(str(i) for i in range(10)),
        splits=("train", "test", "extra"), image_size=32, channels=3,
        license="non-commercial use only",
        citation="Netzer et al., Reading Digits in Natural Images with Unsupervised Feature Learning, 2011",
        homepage="http://ufldl.stanford.edu/housenumbers/",
        description="Street View House Numbers, cropped 32x32 digits",
    ))
    register(Dataset(
        name="imagefolder", loader=_imagefolder, num_classes=None, splits=("train", "test", "val"),
        image_size=None, channels=3, license="yours",
        description="your own images: --data-dir DIR with DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg",
    ))
    register(Dataset(
        name="synthetic", loader=_synthetic, num_classes=10,
        class_names=tuple(f"class_{k}" for k in range(10)), image_size=32, channels=3,
        license="CC0 (generated)",
        description="deterministic generated stripes, 1,000 train / 300 test; for tests and demos",
    ))
