"""Options that several commands share, built from the library's own constants (so a new
strategy or budget appears on the command line without editing a ``click.Choice`` here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from harness.environment import DEVICES
from harness.output import FORMATS
from harness.train.recipe import BUDGETS, OPTIMIZERS, SCHEDULES, STRATEGIES

Decorator = Callable[[Any], Any]


def stack(*decorators: Decorator) -> Decorator:
    """Apply ``decorators`` as if written top to bottom above a function."""
    def apply(f: Any) -> Any:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return apply


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
    click.option("--download/--no-download", default=False, show_default=True,
                 help="Let loaders download missing data (needs internet)."),
    click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
    click.option("--quiet", is_flag=True, help="No progress bars or epoch lines on stderr."),
)

weights_option = click.option(
    "--weights", "weights_file", type=click.Path(dir_okay=False),
    help="Start from this local state dict (.safetensors, or .pth read with weights_only=True) instead of the "
         "backbone's own weights; MODEL names its backbone.")

backbone_option = click.option("--backbone", help="For a weights file without harness metadata (a torchvision "
                                                  ".pth): its backbone.")
