"""Options that several commands share, built from the library's own constants (so a new
strategy or budget appears on the command line without editing a ``click.Choice`` here)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

from harness.environment import DEVICES
from harness.output import FORMATS
from harness.train.recipe import BUDGETS, OPTIMIZERS, SCHEDULES, STRATEGIES
from registry import UsageError

Decorator = Callable[[Any], Any]


def stack(*decorators: Decorator) -> Decorator:
    """Apply ``decorators`` as if written top to bottom above a function."""
    def apply(f: Any) -> Any:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return apply


INPUT_SIZE = click.IntRange(8, 4096)
"""Every ``--input-size``: the range :data:`harness.models.weights.MIN_INPUT_SIZE` .. ``MAX_INPUT_SIZE``
that a weights file's metadata is held to too (written out here so that listing commands, which
import this module, do not import ``harness.models``; a test checks the two agree)."""


class FiniteFloat(click.FloatRange):
    """A float option's type: a range (as :class:`click.FloatRange`, none by default) that also refuses
    ``nan`` and ``inf``, which pass a range check (comparisons with NaN are false). Every float option
    of every command uses it; a test walks the CLI to make sure."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


def positive_int(flag: str, **kwargs: Any) -> Decorator:
    return click.option(flag, type=click.IntRange(min=1), **kwargs)


format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                             help="Output format; json and csv are for machines and go to stdout.")
budget_option = click.option("--budget", type=click.Choice(BUDGETS), default="quick", show_default=True,
                             help="The task protocol's training budget.")
strategy_choice = click.Choice(STRATEGIES)
optimizer_choice = click.Choice(OPTIMIZERS)
schedule_choice = click.Choice(SCHEDULES)

data_options = stack(
    click.option("--data-dir", type=click.Path(file_okay=False), help="Data root (default $HARNESS_DATA)."),
    click.option("--download/--no-download", default=None,
                 help="Fetch a missing registered dataset (checksummed). Default: yes, unless $HARNESS_OFFLINE=1 "
                      "or $HF_HUB_OFFLINE=1; --no-download never uses the network."),
    click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
    click.option("--quiet", is_flag=True, help="No progress bars or epoch lines on stderr."),
)

track_option = click.option(
    "--track", help="Report runs to these trackers, comma-separated: mlflow, tensorboard, or a plugin's "
                    "(default $HARNESS_TRACK; harness plugins lists them).")

weights_option = click.option(
    "--weights", "weights_file", type=click.Path(dir_okay=False),
    help="Start from this local state dict (.safetensors, or .pth read with weights_only=True) instead of the "
         "backbone's own weights; MODEL names its backbone.")

backbone_option = click.option("--backbone", help="For a weights file without harness metadata (a torchvision "
                                                  ".pth): its backbone.")

task_source_options = stack(
    click.option("--data", "data_uri", help="Your images, made a task: an image folder (<class>/*.jpg, or "
                                            "train/<class>/ + test/<class>/), a .csv/.jsonl manifest (path,label"
                                            "[,split]) or hf:NAME_OR_PATH (Hugging Face datasets)."),
    click.option("--test-fraction", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=0.2,
                 show_default=True, help="With --data that has no test split: share of each class held out "
                                         "(seeded, stratified)."),
    click.option("--image-column", help="With --data hf:...: the image column (default: its Image feature)."),
    click.option("--label-column", help="With --data hf:...: the label column (default: its ClassLabel feature)."),
    click.option("--label-depth", type=click.IntRange(min=1), default=1, show_default=True,
                 help="With --data FOLDER: which folder level below the root (or train/, test/) names the class; "
                      "deeper folders are part of it (2: animals/cat is its own class)."),
)


def data_spec(options: dict[str, Any]) -> Any:
    """Pop the :data:`task_source_options` from ``options``; a DataSpec when --data was given."""
    from harness.data.sources import DataSpec

    uri = options.pop("data_uri", None)
    fraction = options.pop("test_fraction", 0.2)
    image, label = options.pop("image_column", None), options.pop("label_column", None)
    depth = options.pop("label_depth", 1)
    if uri is None:
        if image or label:
            raise click.UsageError("--image-column/--label-column go with --data hf:...")
        if depth != 1:
            raise click.UsageError("--label-depth goes with --data FOLDER")
        return None
    from harness.data.views import split_view

    base, view = split_view(uri)
    if not base.startswith("hf:"):
        from pathlib import Path

        base = str(Path(base).expanduser().resolve())
    uri = f"{base}:{view.text()}" if view else base
    return DataSpec(uri, test_fraction=fraction, image_column=image, label_column=label, label_depth=depth)


executor_options = stack(
    click.option("--executor", type=click.Choice(("serial", "ray")), default="serial", show_default=True,
                 help="Where candidates train: one after another here, or as Ray tasks (extra [ray]); export, "
                      "parity and latency always run here."),
    click.option("--ray-address", help="With --executor ray: an existing cluster (default: a local instance)."),
    click.option("--cpus-per-trial", type=FiniteFloat(min=0, min_open=True), default=1.0, show_default=True,
                 help="With --executor ray: CPUs each candidate x seed declares."),
    click.option("--gpus-per-trial", type=FiniteFloat(min=0), default=0.0, show_default=True,
                 help="With --executor ray: GPUs each candidate x seed declares."),
)


def make_executor(executor: str, ray_address: str | None, cpus_per_trial: float, gpus_per_trial: float) -> Any:
    """The executor the options ask for (None: serial); checked before any work starts."""
    if executor != "ray":
        if ray_address:
            raise UsageError("{param} needs --executor ray", param="ray_address")
        return None
    from harness.select.ray_executor import RayExecutor

    return RayExecutor(ray_address, cpus_per_trial, gpus_per_trial)
