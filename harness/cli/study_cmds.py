"""``harness study transfer``: what pretraining buys on a task, at each label budget."""

from __future__ import annotations

from typing import Any

import click

from harness.cli.app import HarnessGroup, make_context
from harness.cli.options import (
    budget_option,
    data_spec,
    executor_options,
    make_executor,
    positive_int,
    task_source_options,
)
from harness.output import render, to_json


def _labels(text: str) -> tuple[int | None, ...]:
    values: list[int | None] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "all":
            values.append(None)
        elif part.isdigit() and int(part) > 0:
            values.append(int(part))
        else:
            raise click.BadParameter(f"{part!r}: give whole numbers of labels per class and/or 'all'",
                                     param_hint="--labels")
    return tuple(values)


@click.group("study", cls=HarnessGroup)
def study_group() -> None:
    """Studies over many fine-tuning runs (cached like select's rows)."""


@study_group.command("transfer")
@click.option("--task", "task_name", help="The target task (or a task file); or use --data.")
@task_source_options
@click.option("--starts", required=True, help="Comma-separated starting points: backbones (from scratch), zoo:NAME, "
                                                "registry models, weight tags (resnet18.tv_in1k).")
@click.option("--labels", "labels_text", default="10,50,all", show_default=True,
              help="Label budgets: training images per class, and/or 'all'.")
@positive_int("--seeds", default=3, show_default=True, help="Seeds per budget (subset and initialisation).")
@click.option("--strategies", default="full", show_default=True, help="Comma-separated: linear, partial, full.")
@budget_option
@positive_int("--epochs", help="Override the budget's epochs.")
@click.option("--no-cache", is_flag=True, help="Retrain even when an identical run is in the store.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write the learning curves (PNG).")
@click.option("--quiet", is_flag=True)
@click.option("--format", "fmt", type=click.Choice(("table", "json", "csv")), default="table", show_default=True)
@executor_options
@click.pass_context
def study_transfer(ctx: click.Context, task_name: str | None, starts: str, labels_text: str, seeds: int,
                   strategies: str, budget: str, epochs: int | None, no_cache: bool, plot_path: str | None,
                   quiet: bool, fmt: str, executor: str, ray_address: str | None, cpus_per_trial: float,
                   gpus_per_trial: float, **source: Any) -> None:
    """Fine-tune every start x strategy x label budget x seed on the task; a table of the mean and
    95% interval of its primary metric, the gain over scratch, and how pretraining quality relates
    to that gain.

    \b
    Example:
      harness zoo build
      harness study transfer --task fashion-mnist:classes=5-9 --starts zoo:default,cifar_resnet20 \\
          --labels 10,50,250 --seeds 3 --plot curves.png
    """
    from harness.data.datatask import resolve
    from harness.select.study import StudyConfig, plot_curves, run_study

    labels = _labels(labels_text)
    spec = data_spec(source)
    runner = make_executor(executor, ray_address, cpus_per_trial, gpus_per_trial)
    with make_context(ctx, quiet=quiet) as hctx:
        task = str(resolve(hctx, task_name, spec))
        config = StudyConfig(task=task, starts=tuple(s.strip() for s in starts.split(",") if s.strip()),
                             labels=labels, seeds=seeds, strategies=tuple(strategies.split(",")), budget=budget,
                             recipe={"epochs": epochs} if epochs else {}, use_cache=not no_cache)
        result = run_study(hctx, config, runner.train_jobs if runner is not None else None)
    if fmt == "json":
        click.echo(to_json(result.as_dict()))
    else:
        click.echo(render(result.table, fmt))
        if fmt == "table" and result.correlation:
            click.echo()
            click.echo(render(result.correlation, "table"))
    if plot_path:
        plot_curves(result, plot_path)
    click.echo(f"{len(result.runs)} runs ({sum(r.cached for r in result.runs)} cached) in {result.seconds:.0f}s",
               err=True)
