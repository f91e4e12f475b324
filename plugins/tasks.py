"""Built-in tasks: a dataset, metrics (the first ranks) and a standard protocol with budgets.

``quick`` is sized for a 2-core CPU in minutes; ``standard`` is a real run on a GPU or a patient
CPU; ``full`` is the long schedule. Digits get no horizontal flip.
"""

from __future__ import annotations

from typing import Any

import harness
from registry import Budget, Protocol, Task

QUALITY = ("accuracy", "macro_f1", "top5_accuracy", "ece")
PRETRAINED = ("resnet18.tv_in1k", "mobilenet_v3_small.tv_in1k")
# Two small CIFAR-style nets, two torchvision architectures from scratch, and the same two from
# ImageNet weights (skipped, with the file to place, where the weights cannot be had).
CANDIDATES = ("cifar_convnet_s", "cifar_resnet20", "resnet18", "mobilenet_v3_small", *PRETRAINED)
# quick: two sizes of each CIFAR-style family. ResNet-18 and MobileNetV3 from scratch at 28-32 px
# spent most of a 10-minute run and came last (0.806 and 0.716 on Fashion-MNIST), so the quick
# budget leaves them to the longer ones; the ImageNet-pretrained pair stays (it is the question).
QUICK_CANDIDATES = ("cifar_convnet_xs", "cifar_resnet8", "cifar_convnet_s", "cifar_resnet20", *PRETRAINED)


def _budgets(input_size: int, flip: bool) -> dict[str, Budget]:
    # quick: minutes on a 2-core CPU. Measured on Fashion-MNIST (cifar_convnet_s): flip-only
    # augmentation, batch 64 and lr 0.1 reach 0.88 in 3 epochs of 12k images, where the full
    # crop+flip recipe at batch 128 reached 0.84: short schedules want less regularisation.
    return {
        # select at quick: successive halving to 9 epochs (rungs 1, 3, 9): the four small nets 1
        # epoch each, the best two to 3, the best one to 9 (14 epochs of training where 4 x 3 was 12):
        # on Fashion-MNIST 0.912 where 3 epochs each shipped 0.887 (README, "The main job").
        "quick": Budget(epochs=3, batch_size=64, lr=0.1, train_limit=12_000, test_limit=None,
                        input_size=input_size, augmentation=("hflip",) if flip else (),
                        candidates=QUICK_CANDIDATES, halving_epochs=9),
        "standard": Budget(epochs=30, batch_size=128, lr=0.1),
        "full": Budget(epochs=100, batch_size=128, lr=0.1),
    }


@harness.hookimpl
def register_tasks(register: Any) -> None:
    specs = [
        ("cifar10", "cifar10", 32, ("random_crop", "hflip"), "CIFAR-10 object classification"),
        ("cifar100", "cifar100", 32, ("random_crop", "hflip"), "CIFAR-100 fine-grained classification"),
        ("mnist", "mnist", 28, ("random_crop",), "MNIST handwritten digits"),
        ("fashion-mnist", "fashion-mnist", 28, ("random_crop", "hflip"), "Fashion-MNIST clothing"),
        ("svhn", "svhn", 32, ("random_crop",), "SVHN house-number digits"),
    ]
    register(Task(
        name="synthetic", dataset="synthetic", metrics=QUALITY,
        protocol=Protocol(input_size=32, augmentation=("random_crop",), crop_padding=2,
                          budgets={"quick": Budget(epochs=2, batch_size=64, lr=0.05),
                                   "standard": Budget(epochs=5, batch_size=64, lr=0.05),
                                   "full": Budget(epochs=10, batch_size=64, lr=0.05)},
                          candidates=("cifar_convnet_s", "cifar_resnet20")),
        description="generated stripes: a seconds-long task for demos and tests",
    ))
    for name, dataset, size, augmentation, text in specs:
        register(Task(
            name=name, dataset=dataset, metrics=QUALITY,
            protocol=Protocol(input_size=size, budgets=_budgets(size, "hflip" in augmentation),
                              augmentation=augmentation,
                              crop_padding=4 if size == 32 else 2, candidates=CANDIDATES),
            description=text,
        ))
