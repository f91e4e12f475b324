"""A plugin that makes, on purpose, the mistakes issue 12 lists: tests load it with the plugin manager
(``make_plugins([sloppy_plugin.Sloppy()])``) and check that each one is reported, named and harmless.

Its tasks run on the built-in synthetic dataset with a few hundred images, so a select over them
takes seconds.
"""

from __future__ import annotations

import math
from typing import Any

import harness
from registry import Backbone, Budget, Dataset, Metric, Protocol, Task

SMALL = {name: Budget(epochs=1, batch_size=64, lr=0.05, train_limit=256, test_limit=128)
         for name in ("quick", "standard", "full")}


def _protocol() -> Protocol:
    return Protocol(input_size=32, budgets=SMALL, augmentation=(), candidates=("cifar_convnet_xs",))


def _linear(num_classes: int, weights: str | None) -> Any:
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))


def _raises_on_the_test_split(logits: Any, targets: Any, num_classes: int) -> float:
    """Fine on small batches (the pre-flight check, validation), raises on the 128 test images."""
    if targets.shape[0] >= 100:
        raise KeyError("class_weights")
    return 0.5


def _broken_loader(split: str, root: Any, download: bool = False, image_size: int | None = None) -> Any:
    raise RuntimeError("cannot read my files")


class Sloppy:
    @harness.hookimpl
    def register_metrics(self, register: Any) -> None:
        register(Metric(name="sloppy_nan", kind="quality", higher_is_better=True, unit="fraction",
                        compute=lambda logits, targets, n: math.nan))
        register(Metric(name="sloppy_div0", kind="quality", higher_is_better=True, unit="fraction",
                        compute=lambda logits, targets, n: 1 / 0))
        register(Metric(name="sloppy_late", kind="quality", higher_is_better=True, unit="fraction",
                        compute=_raises_on_the_test_split))
        register(Metric(name="sloppy_half", kind="quality", higher_is_better=True, unit="fraction",
                        compute=lambda logits, targets, n: 0.5))

    @harness.hookimpl
    def register_datasets(self, register: Any) -> None:
        register(Dataset(name="sloppy-broken", loader=_broken_loader, num_classes=10))
        register(Dataset(name="mnist", loader=_broken_loader, num_classes=10))  # the built-in's name

    @harness.hookimpl
    def register_backbones(self, register: Any) -> None:
        register(Backbone(name="sloppy_badhead", builder=_linear, head="classifier", input_size=32))

    @harness.hookimpl
    def register_tasks(self, register: Any) -> None:
        for name, metrics, dataset in (
            ("sloppy-second", ("accuracy", "sloppy_half"), "synthetic"),
            ("sloppy-nan", ("sloppy_nan", "accuracy"), "synthetic"),
            ("sloppy-div0", ("accuracy", "sloppy_div0"), "synthetic"),
            ("sloppy-late", ("accuracy", "sloppy_late"), "synthetic"),
            ("sloppy-loader", ("accuracy",), "sloppy-broken"),
            ("sloppy-typo", ("acuracy",), "synthetic"),
        ):
            register(Task(name=name, dataset=dataset, metrics=metrics, protocol=_protocol()))


class BadCommands:
    @harness.hookimpl
    def register_commands(self, cli: Any) -> None:
        raise RuntimeError("my command is broken")


def _dies_in_a_ray_worker(num_classes: int, weights: str | None) -> Any:
    """What an out-of-memory kill looks like to Ray: the worker process vanishes (SIGKILL)."""
    import os
    import signal
    import sys

    if any("default_worker" in arg for arg in sys.argv):
        os.kill(os.getpid(), signal.SIGKILL)
    return _linear(num_classes, weights)


class DiesInWorkers:
    """A backbone that kills the Ray worker that builds it (tests of the Ray executor)."""

    @harness.hookimpl
    def register_backbones(self, register: Any) -> None:
        register(Backbone(name="crash_net", builder=_dies_in_a_ray_worker, head="1", input_size=32))


class CommandClash:
    """A command named like a built-in one (``select``): refused, and ``harness plugins --check`` must
    say so (with :class:`BadCommands`, whose hook raises), not ``loaded``."""

    @harness.hookimpl
    def register_commands(self, cli: Any) -> None:
        @cli.command(name="select")
        def select() -> None:
            """Not harness's select."""


class CandidateTypo:
    """A task whose protocol names a backbone that does not exist (``cifar_convnet_xss``)."""

    @harness.hookimpl
    def register_tasks(self, register: Any) -> None:
        protocol = Protocol(input_size=32, budgets=SMALL, augmentation=(), candidates=("cifar_convnet_xss",))
        register(Task(name="typo-candidates", dataset="synthetic", metrics=("accuracy",), protocol=protocol))


class MissingZoo:
    """A Family whose library is not installed: its names must get the install hint everywhere."""

    @harness.hookimpl
    def register_backbones(self, register: Any) -> None:
        from registry import Family

        register(Family(prefix="zoo_", unavailable="the zoo extra: pip install 'harness-zoo[all]'"))
