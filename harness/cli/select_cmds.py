"""``harness select`` and ``harness leaderboard``."""

from __future__ import annotations

import json

import click

from harness.cli import cli, plugins_from
from harness.cli.train_cmds import data_options, open_store
from harness.select.leaderboard import (
    FORMATS,
    UNITS_NOTE,
    plot,
    render,
    rows_from_store,
    sort_key_direction,
    sort_rows,
)


@cli.command("select")
@click.option("--task", "task_name", required=True)
@click.option("--budget", type=click.Choice(["quick", "standard", "full"]), default="quick", show_default=True)
@click.option("--candidates", help="Comma-separated names, wildcards (resnet*, *.tv_in1k) or registry refs.")
@click.option("--prescreen", type=click.Choice(["logme", "knn", "linear"]), help="Score transferability first.")
@click.option("--top-k", type=int, help="With --prescreen: fine-tune only the best K.")
@click.option("--max-latency-ms", type=float, help="Constraint on ONNX Runtime batch-1 latency.")
@click.option("--max-params", type=float, help="Constraint on parameter count.")
@click.option("--max-size-mb", type=float, help="Constraint on the ONNX file size.")
@click.option("--seeds", type=int, default=1, show_default=True, help="Runs per candidate (mean ± 95% CI).")
@click.option("--no-cache", is_flag=True, help="Retrain even when an identical run is in the store.")
@click.option("--offline", is_flag=True, help="Fail fast, listing pretrained files to place, instead of downloading.")
@click.option("--strategy", type=click.Choice(["linear", "partial", "full"]),
              help="Fine-tuning strategy for every candidate (default: full).")
@click.option("--epochs", type=int, help="Override the budget's epochs.")
@click.option("--batch-size", type=int, help="Override the budget's batch size.")
@click.option("--lr", type=float, help="Override the budget's head learning rate.")
@click.option("--train-limit", type=int, help="Seeded subset of N training images.")
@click.option("--test-limit", type=int, help="Seeded subset of N test images.")
@click.option("--input-size", type=int, help="Override the protocol's input size.")
@click.option("--threads", type=int, help="Threads for the latency benchmark.")
@click.option("--format", "fmt", type=click.Choice((*FORMATS, "table")), default="table", show_default=True)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write accuracy vs latency PNG.")
@data_options
@click.pass_context
def select_command(ctx, task_name, budget, candidates, prescreen, top_k, max_latency_ms, max_params, max_size_mb,
                   seeds, no_cache, offline, strategy, epochs, batch_size, lr, train_limit, test_limit, input_size,
                   threads, fmt, plot_path, data_dir, download, device,
                   quiet):
    """Fine-tune, evaluate, export, check and benchmark candidates on TASK; choose one to ship.

    \b
    Example:
      harness select --task fashion-mnist --budget quick
      harness select --task cifar10 --candidates 'resnet18.tv_in1k,cifar_*' --prescreen knn --top-k 2
    """
    from harness.select.run import select

    catalogue = plugins_from(ctx).catalogue
    with open_store() as store:
        result = select(catalogue, store, task_name, budget=budget,
                        candidates=candidates.split(",") if candidates else None, prescreen=prescreen, top_k=top_k,
                        max_latency_ms=max_latency_ms, max_params=max_params, max_size_mb=max_size_mb, seeds=seeds,
                        no_cache=no_cache, offline=offline, data_dir=data_dir, download=download, device=device,
                        quiet=quiet, threads=threads,
                        recipe_overrides={"strategy": strategy, "epochs": epochs, "batch_size": batch_size,
                                          "lr": lr, "train_limit": train_limit, "test_limit": test_limit,
                                          "input_size": input_size})
    rows = sort_rows(result.rows, result.primary, result.higher_is_better) + result.skipped
    if fmt == "json":
        click.echo(json.dumps({"task": result.task, "primary_metric": result.primary, "rows": rows,
                               "winner": result.winner and result.winner["model"], "prescreen": result.prescreen,
                               "kendall_tau": result.kendall_tau, "seconds": result.seconds,
                               "units": UNITS_NOTE}, indent=2, default=str))
    else:
        click.echo(render(rows, "github" if fmt == "table" else fmt, result.primary))
    if plot_path:
        plot(result.rows, result.primary, result.higher_is_better, plot_path, f"{result.task}: select")
    summary = [f"{UNITS_NOTE}", f"wall time {result.seconds:.0f}s"]
    if result.prescreen:
        tau = "n/a (fewer than 3 fine-tuned)" if result.kendall_tau is None else f"{result.kendall_tau:.2f}"
        summary.append(f"prescreen {result.prescreen} vs fine-tuned order: Kendall tau {tau}")
    if result.winner:
        w = result.winner
        summary.append(f"chosen: {w['model']} ({w['candidate']}, {result.primary} {w[result.primary]}) "
                       f"-> alias {result.task}:best")
        summary.append(f"ship it: harness export {result.task}:best --out exports/   "
                       f"or load: harness evaluate {result.task}:best")
    else:
        summary.append("no candidate met every constraint; nothing chosen")
    for line in summary:
        click.echo(line, err=fmt != "table")


@cli.command("leaderboard")
@click.option("--task", "task_name", required=True)
@click.option("--format", "fmt", type=click.Choice((*FORMATS, "table")), default="table", show_default=True,
              help="table is github; csv and json are for machines.")
@click.option("--sort", "sort_by", help="Metric or column to sort by (default: the task's primary metric).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write accuracy vs latency PNG.")
@click.pass_context
def leaderboard_command(ctx, task_name, fmt, sort_by, plot_path):
    """The stored leaderboard of a task: one row per candidate that select has run."""
    catalogue = plugins_from(ctx).catalogue
    task = catalogue.tasks.get(task_name)
    primary = catalogue.metrics.get(task.primary_metric)
    higher_first = sort_key_direction(catalogue, primary.name, sort_by) if sort_by else True
    with open_store() as store:
        rows = rows_from_store(catalogue, store, task_name)
        home = store.home
    if not rows:
        click.echo(f"no select results for task {task.name!r} in {home}; run 'harness select --task {task.name}' "
                   "(or point HARNESS_HOME at the store that has them)", err=True)
    if sort_by:
        rows = sort_rows(rows, sort_by, higher_first)
    click.echo(render(rows, "github" if fmt == "table" else fmt, primary.name))
    if plot_path:
        plot(rows, primary.name, primary.higher_is_better, plot_path, f"{task.name} leaderboard")
