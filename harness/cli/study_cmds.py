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


def _mults(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        values = ()
    if not values or any(not (v > 0 and v < float("inf")) for v in values):
        raise click.BadParameter(f"{text!r}: give positive numbers joined by commas, e.g. 0.1,1",
                                 param_hint="--lr-mults")
    return values


@click.group("study", cls=HarnessGroup)
def study_group() -> None:
    """Studies over many fine-tuning runs (cached like select's rows).

    \b
    Example:
      harness study transfer --task cifar10 --starts zoo:default,cifar_convnet_s
    """


@study_group.command("transfer")
@click.option("--task", "task_name", help="The target task (or a task file); or use --data.")
@task_source_options
@click.option("--starts", required=True, help="Comma-separated starting points: backbones (from scratch), zoo:NAME, "
                                                "registry models, weight tags (resnet18.tv_in1k).")
@click.option("--labels", "labels_text", default="10,50,all", show_default=True,
              help="Label budgets: training images per class, and/or 'all'.")
@positive_int("--seeds", default=3, show_default=True, help="Seeds per budget (subset and initialisation).")
@click.option("--strategies", default="full", show_default=True,
              help="Strategies of the equal-steps arm, comma-separated: linear, partial, full.")
@budget_option
@positive_int("--epochs", help="Override the budget's epochs (the equal-steps arm).")
@click.option("--no-converge", is_flag=True, help="Skip the converged arm (early stopping, recipe grid).")
@positive_int("--val-per-class", default=50, show_default=True,
              help="Validation images per class, outside the training labels (early stopping, recipe choice).")
@click.option("--lr-mults", "mults_text", default="0.1,1", show_default=True,
              help="Backbone learning-rate multipliers of the converged arm's recipe grid.")
@positive_int("--converge-steps", default=600, show_default=True,
              help="Converged arm: SGD steps to allow, as epochs of the subset (at least 10 epochs).")
@positive_int("--max-epochs", default=150, show_default=True, help="Converged arm: at most this many epochs.")
@positive_int("--patience", help="Converged arm: stop after this many epochs without a better validation score "
                                 "[default: a quarter of the epochs, at least 3].")
@click.option("--no-cache", is_flag=True, help="Retrain even when an identical run is in the store.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write the learning curves (PNG).")
@click.option("--quiet", is_flag=True)
@click.option("--format", "fmt", type=click.Choice(("table", "json", "csv")), default="table", show_default=True)
@executor_options
@click.pass_context
def study_transfer(ctx: click.Context, task_name: str | None, starts: str, labels_text: str, seeds: int,
                   strategies: str, budget: str, epochs: int | None, no_converge: bool, val_per_class: int,
                   mults_text: str, converge_steps: int, max_epochs: int, patience: int | None, no_cache: bool,
                   plot_path: str | None, quiet: bool, fmt: str, executor: str, ray_address: str | None,
                   cpus_per_trial: float, gpus_per_trial: float, **source: Any) -> None:
    """Train every start on the task's label budgets and seeds, twice: at equal steps (the budget's
    recipe) and to convergence (early stopping on validation, the recipe chosen on validation from a
    small grid). Prints each start's gain over scratch with a paired 95% interval over seeds, one
    verdict per budget, and how pretraining quality relates to the gain.

    \b
    Example:
      harness zoo build
      harness study transfer --task fashion-mnist:classes=5-9 --starts zoo:default,cifar_convnet_s \\
          --labels 10,50 --seeds 3 --plot curves.png
    """
    from harness.data.datatask import resolve
    from harness.select.study import Converge, StudyConfig, plot_curves, run_study

    labels = _labels(labels_text)
    mults = _mults(mults_text)
    spec = data_spec(source)
    runner = make_executor(executor, ray_address, cpus_per_trial, gpus_per_trial)
    converge = None if no_converge else Converge(steps=converge_steps, max_epochs=max_epochs, patience=patience,
                                                 min_epochs=min(10, max_epochs))
    with make_context(ctx, quiet=quiet) as hctx:
        task = str(resolve(hctx, task_name, spec))
        config = StudyConfig(task=task, starts=tuple(s.strip() for s in starts.split(",") if s.strip()),
                             labels=labels, seeds=seeds, strategies=tuple(strategies.split(",")), budget=budget,
                             recipe={"epochs": epochs} if epochs else {}, use_cache=not no_cache, converge=converge,
                             lr_mults=mults, val_per_class=val_per_class)
        result = run_study(hctx, config, runner.train_jobs if runner is not None else None)
    if fmt == "json":
        click.echo(to_json(result.as_dict()))
    elif fmt == "csv":
        click.echo(render([_flat(row) for row in result.table], "csv"))
    else:
        click.echo(_report(result))
    if plot_path:
        plot_curves(result, plot_path)
    click.echo(f"{len(result.runs)} runs ({sum(r.cached for r in result.runs)} cached) in {result.seconds:.0f}s",
               err=True)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A table row with its gain spread over columns (CSV)."""
    gain = row.get("gain") or {}
    out = {k: v for k, v in row.items() if k not in ("gain", "recipes", "epochs", "best_epochs", "max_epochs")}
    out.update({f"gain_{k}": gain.get(k) for k in ("mean", "low", "high", "p_value", "n_seeds", "verdict")})
    if "recipes" in row:
        out["recipes"] = " ".join(f"{k}:{v}" for k, v in row["recipes"].items())
        out["epochs"] = " ".join(str(e) for e in row["epochs"])
    return out


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A table row for people: the mean with its interval, the gain with its interval and verdict."""
    gain = row.get("gain")
    out = {"start": row["start"], "strategy": row["strategy"], "labels/class": row["labels_per_class"],
           "n": row["seeds"], "mean ± 95% CI": f"{row['mean']:.3f} ± {row['ci95']:.3f}",
           "gain [95% CI]": "" if gain is None else (
               f"{gain['mean']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}]" if gain["low"] is not None
               else f"{gain['mean']:+.3f}"),
           "verdict": "" if gain is None else gain["verdict"]}
    if "recipes" in row:
        out["recipe (seeds)"] = ", ".join(f"{k} ({v})" for k, v in row["recipes"].items())
        out["epochs (of max)"] = ", ".join(f"{e}/{m}" for e, m in zip(row["epochs"], row["max_epochs"], strict=True))
    return out


def _report(result: Any) -> str:
    """The study for people: both arms' tables, the verdicts, the correlations, the notes."""
    from harness.select.study import CONVERGED, EQUAL

    table, protocol = result.table, result.protocol
    parts = [f"Equal steps ({protocol['equal_steps']}):",
             render([_shown(r) for r in table if r["arm"] == EQUAL], "table")]
    converged = [_shown(r) for r in table if r["arm"] == CONVERGED]
    if converged:
        parts += ["", "Converged (early stopping on validation; per seed the recipe with the best validation "
                  "score; 'chosen' is the fair-recipe row):", render(converged, "table")]
    parts += ["", f"Verdicts ({protocol['interval']}):"] + [f"  {v.text}" for v in result.verdicts]
    if not result.verdicts:
        parts.append("  none: the study needs a scratch start and a pretrained one")
    if result.correlation:
        parts += ["", "Pretraining quality vs gain (Spearman, only among starts of one source and method):",
                  render([c.as_dict() for c in result.correlation], "table")]
    parts += ["", "Notes:"] + [f"  - {n}" for n in result.notes]
    return "\n".join(parts)
