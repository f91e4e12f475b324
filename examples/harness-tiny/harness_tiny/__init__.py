"""harness-tiny: a complete third-party harness plugin in one module.

It registers one of each thing a plugin can register. Heavy imports (torch) happen inside the
builder, loader and metric functions, so listing the catalogue stays fast.
"""

from __future__ import annotations

import click

import harness
from registry import Backbone, Budget, Dataset, ImageSplit, Metric, Protocol, Task


def build_tinynet(num_classes: int, weights: str | None):
    """A two-layer convnet; ``weights`` is always None because it has no pretrained tags."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, num_classes),
    )


def load_checkers(split: str, root, download: bool = False, image_size: int | None = None) -> ImageSplit:
    """Two classes: fine or coarse checkerboards, 16x16, generated deterministically."""
    import torch

    n = 64 if split == "train" else 32
    gen = torch.Generator().manual_seed(0 if split == "train" else 1)
    labels = torch.arange(n) % 2
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    fine, coarse = ((xx + yy) % 2), ((xx // 4 + yy // 4) % 2)
    base = torch.stack([fine, coarse])[labels].float()
    noise = torch.rand(n, 16, 16, generator=gen) * 0.2
    images = ((base * 0.8 + noise) * 255).to(torch.uint8)[:, None].expand(n, 3, 16, 16).contiguous()
    return ImageSplit(images, labels.to(torch.int64), ("fine", "coarse"))


def error_rate(logits, targets, num_classes: int) -> float:
    """1 - accuracy: lower is better."""
    return float((logits.argmax(dim=1) != targets).float().mean())


@harness.hookimpl
def register_backbones(register):
    register(Backbone(name="tinynet_xs", builder=build_tinynet, head="7", feature_dim=32,
                      input_size=16, min_input_size=4, license="MIT",
                      source="harness-tiny", description="a two-layer convnet"))


@harness.hookimpl
def register_datasets(register):
    register(Dataset(name="checkers", loader=load_checkers, num_classes=2,
                     class_names=("fine", "coarse"), image_size=16, channels=3, license="CC0",
                     description="generated fine vs coarse checkerboards"))


@harness.hookimpl
def register_metrics(register):
    register(Metric(name="error_rate", kind="quality", higher_is_better=False, unit="fraction",
                    compute=error_rate, description="1 - accuracy"))


@harness.hookimpl
def register_tasks(register):
    budgets = {name: Budget(epochs=e, batch_size=32, lr=0.05)
               for name, e in (("quick", 1), ("standard", 5), ("full", 20))}
    register(Task(name="checkers", dataset="checkers", metrics=("accuracy", "error_rate"),
                  protocol=Protocol(input_size=16, budgets=budgets, augmentation=("hflip",),
                                    candidates=("tinynet_xs",)),
                  description="tell fine from coarse checkerboards"))


@harness.hookimpl
def register_commands(cli):
    @cli.command(name="tiny-hello")
    @click.argument("name", default="world")
    def tiny_hello(name: str) -> None:
        """Say hello (shows that plugins can add commands)."""
        click.echo(f"hello from harness-tiny, {name}")
