"""Small CIFAR-style backbones suited to 32x32 images on a CPU (no pretrained weights)."""

from __future__ import annotations

from typing import Any

import harness
from registry import Backbone

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _resnet(depth: int) -> Any:
    def build(num_classes: int, weights: str | None) -> Any:
        from plugins.cifar_models import CifarResNet

        return CifarResNet(depth=depth, num_classes=num_classes)

    return build


def _convnet(widths: tuple[int, int, int]) -> Any:
    def build(num_classes: int, weights: str | None) -> Any:
        from plugins.cifar_models import ConvNet

        return ConvNet(widths=widths, num_classes=num_classes)

    return build


@harness.hookimpl
def register_backbones(register: Any) -> None:
    common: dict[str, Any] = dict(head="fc", input_size=32, min_input_size=8, mean=CIFAR_MEAN, std=CIFAR_STD,
                  license="Apache-2.0 (harness)", source="harness built-in (plugins/cifar_models.py)")
    for depth in (8, 20, 56):
        register(Backbone(
            name=f"cifar_resnet{depth}", builder=_resnet(depth), feature_dim=64,
            family="cifar_resnet", paper="He et al. 2016, Deep Residual Learning (CIFAR variant)",
            description=f"CIFAR ResNet-{depth}: 3 stages of {(depth - 2) // 6} basic blocks, 16/32/64 wide",
            **common,
        ))
    for variant, widths in (("xs", (16, 32, 64)), ("s", (32, 64, 128)), ("m", (64, 128, 256))):
        register(Backbone(
            name=f"cifar_convnet_{variant}", builder=_convnet(widths), feature_dim=widths[-1],
            family="cifar_convnet",
            description=f"VGG-style convnet, 6 conv layers {widths[0]}/{widths[1]}/{widths[2]} wide",
            **common,
        ))
