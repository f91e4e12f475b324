"""``harness finetune``, ``harness pretrain`` and ``harness evaluate``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import click

from harness.cli.app import HarnessCommand, make_context
from harness.cli.options import (
    INPUT_SIZE,
    FiniteFloat,
    backbone_option,
    budget_option,
    data_options,
    data_spec,
    format_option,
    optimizer_choice,
    positive_int,
    schedule_choice,
    stack,
    strategy_choice,
    task_source_options,
    track_option,
    weights_option,
)
from harness.output import render, render_report, to_json
from harness.train.recipe import KEEP_EPOCHS, PRETRAIN_METHODS
from registry import PluginError, UsageError

# Flags that override the task protocol's budget, by Recipe field.
recipe_options = stack(
    click.option("--strategy", type=strategy_choice, default="full", show_default=True,
                 help="linear: new head only; partial: also the last N blocks; full: everything."),
    click.option("--blocks", "partial_blocks", type=click.IntRange(min=0), default=1, show_default=True,
                 help="partial: how many of the last blocks to unfreeze."),
    budget_option,
    positive_int("--epochs"),
    positive_int("--batch-size"),
    click.option("--lr", type=FiniteFloat(min=0, min_open=True),
                 help="Head learning rate (the backbone gets lr x --backbone-lr-mult)."),
    click.option("--backbone-lr-mult", type=FiniteFloat(min=0),
                 help="Backbone lr = lr x this (default 0.1 from pretrained weights, 1.0 from scratch)."),
    click.option("--optimizer", type=optimizer_choice),
    click.option("--schedule", type=schedule_choice),
    click.option("--warmup-epochs", type=FiniteFloat(min=0)),
    click.option("--weight-decay", type=FiniteFloat(min=0)),
    click.option("--label-smoothing", type=FiniteFloat(0, 1, max_open=True)),
    click.option("--val-fraction", type=FiniteFloat(0, 1, max_open=True)),
    positive_int("--patience", help="Early stopping after N epochs without improvement."),
    click.option("--keep-epoch", type=click.Choice(KEEP_EPOCHS),
                 help="best: validate every epoch, keep the best (default); last: validate once, keep the last."),
    positive_int("--train-limit", help="Use a seeded random subset of N training images."),
    positive_int("--test-limit", help="Evaluate on a seeded random subset of N test images."),
    click.option("--input-size", type=INPUT_SIZE),
    click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True),
)
RECIPE_FLAGS = ("strategy", "partial_blocks", "epochs", "batch_size", "lr", "backbone_lr_mult", "optimizer",
                "schedule", "warmup_epochs", "weight_decay", "label_smoothing", "val_fraction", "patience",
                "keep_epoch", "train_limit", "test_limit", "input_size", "seed")
DATA_FLAGS = ("data_dir", "download", "device", "quiet", "track")


def split_options(options: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Remove ``names`` from ``options`` and return them (flags grouped by what they configure)."""
    return {name: options.pop(name) for name in names if name in options}


def with_weights(model: str, weights_file: str | None, backbone: str | None) -> tuple[str, str | None]:
    """``BACKBONE --weights FILE`` is ``FILE --backbone BACKBONE``: the form users type."""
    if weights_file is None:
        return model, backbone
    if backbone is not None and backbone != model:
        raise UsageError(f"--backbone {backbone} contradicts MODEL {model}; with --weights, MODEL is the backbone")
    if "." in model or "@" in model or ":" in model:
        raise UsageError(f"with --weights FILE, MODEL must be a plain backbone name (not {model!r})")
    return weights_file, model


EXIT_INTERRUPTED = 130
"""128 + SIGINT, as shells report a command stopped by Ctrl-C."""


@contextlib.contextmanager
def resumable_on_ctrl_c() -> Iterator[None]:
    """Ctrl-C during a training run: say how to go on (the checkpoint of the last finished epoch is
    kept) instead of click's bare "Aborted!", and exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo("harness: interrupted; nothing was registered. Run the same command with --resume to go on "
                   "from the last finished epoch (from the start if none finished)", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None


def emit_row(row: dict[str, Any], fmt: str) -> None:
    click.echo(to_json(row) if fmt == "json" else render([row], fmt))


@click.command("finetune", cls=HarnessCommand)
@click.argument("model")
@click.option("--task", "task_name", help="Task to fine-tune on (harness list tasks), or a task file (.toml).")
@task_source_options
@recipe_options
@click.option("--name", help="Registry name for the result (default: the task name).")
@click.option("--alias", help="Point NAME:ALIAS at the result.")
@click.option("--resume", is_flag=True, help="Continue the same run from its last epoch checkpoint.")
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the model.")
@click.option("--tta", is_flag=True, help="Average test predictions with horizontally flipped images.")
@backbone_option
@weights_option
@data_options
@track_option
@format_option
@click.pass_context
def finetune_command(ctx: click.Context, model: str, task_name: str | None, budget: str, name: str | None,
                     alias: str | None, resume: bool, use_compile: bool, tta: bool, backbone: str | None,
                     weights_file: str | None, fmt: str, **options: Any) -> None:
    """Fine-tune MODEL (backbone[.tag], registry NAME[@V|:ALIAS] or weights file) on a task.

    \b
    Examples:
      harness finetune cifar_resnet20 --task fashion-mnist
      harness finetune resnet18.tv_in1k --task cifar10 --strategy linear --budget standard
      harness finetune fashion-mnist:best --task fashion-mnist --epochs 2 --lr 0.01
      harness finetune resnet18 --weights resnet18-f37072fd.pth --task cifar10
      torchrun --nproc-per-node 2 -m harness finetune cifar_resnet20 --task fashion-mnist
    """
    from harness.data.datatask import resolve
    from harness.train.distributed import launched
    from harness.train.finetune import finetune
    from harness.train.recipe import recipe_for

    model, backbone = with_weights(model, weights_file, backbone)
    source = data_spec(options)
    flags = split_options(options, DATA_FLAGS)
    secondary = launched() and os.environ.get("RANK", "0") != "0"  # torchrun: rank 0 reports
    if secondary:
        flags["quiet"] = True
    with make_context(ctx, **flags) as hctx:
        hctx.check_new_name(name, alias)
        task = hctx.catalogue.task(str(resolve(hctx, task_name, source)))
        recipe = recipe_for(task, budget, **split_options(options, RECIPE_FLAGS))
        with resumable_on_ctrl_c():
            result = finetune(hctx, model, task, recipe, name=name, resume=resume, compile=use_compile,
                              alias=alias, tta_flip=tta, backbone=backbone)
    if secondary:
        return
    emit_row({"model": result.version.ref, "parent": result.version.parent_ref, **result.test.metrics,
              **{name: None for name in result.test.failed},
              "seconds": result.version.metrics["train"]["seconds"]}, fmt)
    if result.test.failed:  # the model is kept; the run still did not give every score asked for
        raise PluginError(f"{result.test.failure()}; {result.version.ref} was registered with "
                          f"{', '.join(result.test.failed)} marked failed")


@click.command("evaluate", cls=HarnessCommand)
@click.argument("model")
@click.option("--task", "task_name", help="Task to evaluate on (default: the one MODEL was trained for).")
@task_source_options
@click.option("--tta", is_flag=True, help="Test-time augmentation: average with horizontally flipped images.")
@positive_int("--test-limit", help="Evaluate on a seeded random subset of N test images.")
@backbone_option
@weights_option
@click.option("--save/--no-save", default=True, show_default=True, help="Record the scores with the registry version.")
@data_options
@format_option
@click.pass_context
def evaluate_command(ctx: click.Context, model: str, task_name: str | None, tta: bool, test_limit: int | None,
                     backbone: str | None, weights_file: str | None, save: bool, fmt: str, **options: Any) -> None:
    """Evaluate MODEL on a task's test split: every metric, per-class scores, confusion matrix.

    \b
    Examples:
      harness evaluate fashion-mnist:best
      harness evaluate fashion-mnist@3 --tta --format json
      harness evaluate resnet18 --weights my.pth --task cifar10
    """
    from harness.data.datatask import resolve
    from harness.evaluate.model import evaluate_model

    model, backbone = with_weights(model, weights_file, backbone)
    source = data_spec(options)
    with make_context(ctx, **options) as hctx:
        task_name = resolve(hctx, task_name, source, required=False)
        report = evaluate_model(hctx, model, task_name, tta_flip=tta, test_limit=test_limit, backbone=backbone,
                                save=save)
    data = report.as_dict()
    machine = render_report(data, data["per_class"], fmt)
    if machine is not None:
        click.echo(machine)
    else:
        _print_evaluation(report, data)
    if report.evaluation.failed:
        raise PluginError(report.evaluation.failure() or "")


def _print_evaluation(report: Any, data: dict[str, Any]) -> None:
    failed = {name: "failed" for name in report.evaluation.failed}
    click.echo(render([{"model": report.model, "task": report.task, **report.metrics, **failed}], "table"))
    click.echo()
    click.echo(render(data["per_class"], "table"))
    click.echo()
    names = [row["class"] for row in data["per_class"]]
    matrix = [{"true \\ pred": n, **{str(j): v for j, v in enumerate(r)}}
              for n, r in zip(names, data["confusion_matrix"], strict=True)]
    click.echo("confusion matrix (rows: true class, columns: predicted class index)")
    click.echo(render(matrix, "table"))
    if report.eval_set is not None:
        click.echo(f"\nscored on {report.eval_set.text()}")


@click.command("pretrain", cls=HarnessCommand)
@click.argument("backbone")
@click.option("--dataset", "dataset_name", help="Source dataset (harness list datasets); or use --data.")
@task_source_options
@click.option("--method", type=click.Choice(PRETRAIN_METHODS), default="supervised", show_default=True,
              help="supervised: train on the labels; autoencoder: reconstruct the images; contrastive: "
                   "SimCLR, two augmented views agree (the last two never read labels).")
@positive_int("--epochs", default=5, show_default=True)
@positive_int("--batch-size", default=128, show_default=True)
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=0.05, show_default=True)
@positive_int("--train-limit")
@click.option("--input-size", type=INPUT_SIZE)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--name", help="Registry name (default: BACKBONE-METHOD-DATASET).")
@click.option("--resume", is_flag=True)
@weights_option
@data_options
@track_option
@format_option
@click.pass_context
def pretrain_command(ctx: click.Context, backbone: str, dataset_name: str | None, method: str, name: str | None,
                     resume: bool, weights_file: str | None, fmt: str, **options: Any) -> None:
    """Pretrain BACKBONE on a dataset and register the weights as a new model version.

    \b
    Example (offline: no pretrained weights needed):
      harness pretrain cifar_resnet20 --dataset cifar10 --method autoencoder --epochs 5
      harness finetune cifar_resnet20-autoencoder-cifar10 --task fashion-mnist
    """
    from harness.data.datatask import resolve
    from harness.train.pretrain import pretrain
    from harness.train.recipe import Recipe

    ref, entry = with_weights(backbone, weights_file, None)
    source = data_spec(options)
    with make_context(ctx, **split_options(options, DATA_FLAGS)) as hctx:
        hctx.check_new_name(name)
        if (source is None) == (dataset_name is None):
            raise click.UsageError("give --dataset NAME (harness list datasets) or --data PATH, one of them")
        if source is not None:  # a data task's dataset has the task's name
            dataset_name = str(resolve(hctx, None, source))
        else:
            from harness.data.views import register_view, split_view

            base, view = split_view(str(dataset_name))
            dataset_name = register_view(hctx, base, view) if view else base
        recipe = Recipe(**options, budget="pretrain", label_smoothing=0.0)
        with resumable_on_ctrl_c():
            result = pretrain(hctx, ref, dataset_name, method, recipe, name=name, resume=resume,
                              backbone_name=entry)
    emit_row({"model": result.version.ref, **{k: v for k, v in result.metrics.items() if k != "dataset"}}, fmt)
