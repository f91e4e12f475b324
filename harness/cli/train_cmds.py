"""``harness finetune``, ``harness pretrain`` and ``harness evaluate``."""

from __future__ import annotations

import json

import click

from harness.cli import cli, format_option, plugins_from
from harness.output import render_rows

DATA_OPTIONS = [
    click.option("--data-dir", type=click.Path(file_okay=False), help="Data root (default $HARNESS_DATA)."),
    click.option("--download/--no-download", default=False, show_default=True,
                 help="Let loaders download missing data (needs internet)."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    click.option("--quiet", is_flag=True, help="No progress bars or epoch lines on stderr."),
]


def data_options(f):
    for option in reversed(DATA_OPTIONS):
        f = option(f)
    return f


def weights_option(f):
    return click.option("--weights", "weights_file", type=click.Path(dir_okay=False),
                        help="Start from this local state dict (.safetensors, or .pth read with weights_only=True) "
                             "instead of the backbone's own weights; MODEL names its backbone.")(f)


def with_weights(model: str, weights_file: str | None, backbone: str | None) -> tuple[str, str | None]:
    """``BACKBONE --weights FILE`` is ``FILE --backbone BACKBONE``: the form the issue tracker's users type."""
    from registry import UsageError

    if weights_file is None:
        return model, backbone
    if backbone is not None and backbone != model:
        raise UsageError(f"--backbone {backbone} contradicts MODEL {model}; with --weights, MODEL is the backbone")
    if "." in model or "@" in model or ":" in model:
        raise UsageError(f"with --weights FILE, MODEL must be a plain backbone name (not {model!r})")
    return weights_file, model


def open_store():
    from registry.store import ModelStore

    return ModelStore()


@cli.command("finetune")
@click.argument("model")
@click.option("--task", "task_name", required=True, help="Task to fine-tune on (harness list tasks).")
@click.option("--strategy", type=click.Choice(["linear", "partial", "full"]), default="full", show_default=True,
              help="linear: new head only; partial: also the last N blocks; full: everything.")
@click.option("--blocks", "partial_blocks", type=int, default=1, show_default=True,
              help="partial: how many of the last blocks to unfreeze.")
@click.option("--budget", type=click.Choice(["quick", "standard", "full"]), default="quick", show_default=True)
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--lr", type=float, help="Head learning rate (the backbone gets lr x --backbone-lr-mult).")
@click.option("--backbone-lr-mult", type=float,
              help="Backbone lr = lr x this (default 0.1 from pretrained weights, 1.0 from scratch).")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]))
@click.option("--schedule", type=click.Choice(["cosine", "step"]))
@click.option("--warmup-epochs", type=float)
@click.option("--weight-decay", type=float)
@click.option("--label-smoothing", type=float)
@click.option("--val-fraction", type=float)
@click.option("--patience", type=int, help="Early stopping after N epochs without improvement.")
@click.option("--train-limit", type=int, help="Use a seeded random subset of N training images.")
@click.option("--test-limit", type=int)
@click.option("--input-size", type=int)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", help="Registry name for the result (default: the task name).")
@click.option("--alias", help="Point NAME:ALIAS at the result.")
@click.option("--resume", is_flag=True, help="Continue the same run from its last epoch checkpoint.")
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the model.")
@click.option("--tta", is_flag=True, help="Average test predictions with horizontally flipped images.")
@click.option("--backbone", help="For a weights file without harness metadata (a torchvision .pth): its backbone.")
@weights_option
@data_options
@format_option
@click.pass_context
def finetune_command(ctx, model, task_name, strategy, partial_blocks, budget, epochs, batch_size, lr,
                     backbone_lr_mult, optimizer, schedule, warmup_epochs, weight_decay, label_smoothing,
                     val_fraction, patience, train_limit, test_limit, input_size, seed, name, alias, resume,
                     use_compile, tta, backbone, weights_file, data_dir, download, device, quiet, fmt):
    """Fine-tune MODEL (backbone[.tag], registry NAME[@V|:ALIAS] or weights file) on a task.

    \b
    Examples:
      harness finetune cifar_resnet20 --task fashion-mnist
      harness finetune resnet18.tv_in1k --task cifar10 --strategy linear --budget standard
      harness finetune fashion-mnist:best --task fashion-mnist --epochs 2 --lr 0.01
      harness finetune resnet18 --weights resnet18-f37072fd.pth --task cifar10
    """
    from harness.train.finetune import finetune
    from harness.train.recipe import recipe_for

    model, backbone = with_weights(model, weights_file, backbone)
    catalogue = plugins_from(ctx).catalogue
    task = catalogue.tasks.get(task_name)
    recipe = recipe_for(task, budget, strategy=strategy, partial_blocks=partial_blocks, epochs=epochs,
                        batch_size=batch_size, lr=lr, backbone_lr_mult=backbone_lr_mult, optimizer=optimizer,
                        schedule=schedule, warmup_epochs=warmup_epochs, weight_decay=weight_decay,
                        label_smoothing=label_smoothing, val_fraction=val_fraction, patience=patience,
                        train_limit=train_limit, test_limit=test_limit, input_size=input_size, seed=seed)
    with open_store() as store:
        result = finetune(catalogue, store, model, task_name, recipe, name=name, data_dir=data_dir,
                          download=download, device=device, resume=resume, quiet=quiet, compile=use_compile,
                          alias=alias, tta_flip=tta, backbone=backbone)
    row = {"model": result.version.ref, "parent": result.version.parent_ref, **result.test.metrics,
           "seconds": result.version.metrics["train"]["seconds"]}
    click.echo(json.dumps(row, indent=2) if fmt == "json" else render_rows([row], fmt))


@cli.command("evaluate")
@click.argument("model")
@click.option("--task", "task_name", help="Task to evaluate on (default: the one MODEL was trained for).")
@click.option("--tta", is_flag=True, help="Test-time augmentation: average with horizontally flipped images.")
@click.option("--test-limit", type=int, help="Evaluate on a seeded random subset of N test images.")
@click.option("--backbone", help="For a weights file without harness metadata: its backbone.")
@weights_option
@click.option("--save/--no-save", default=True, show_default=True,
              help="Record the scores with the registry version.")
@data_options
@format_option
@click.pass_context
def evaluate_command(ctx, model, task_name, tta, test_limit, backbone, weights_file, save, data_dir, download, device,
                     quiet, fmt):
    """Evaluate MODEL on a task's test split: every metric, per-class scores, confusion matrix."""
    from harness.train.evaluate_model import evaluate_model

    model, backbone = with_weights(model, weights_file, backbone)
    catalogue = plugins_from(ctx).catalogue
    with open_store() as store:
        report = evaluate_model(catalogue, store, model, task_name, tta_flip=tta, test_limit=test_limit,
                                backbone=backbone, data_dir=data_dir, download=download, device=device,
                                save=save)
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
    elif fmt == "csv":
        click.echo(render_rows(report["per_class"], "csv"))
    else:
        click.echo(render_rows([{"model": report["model"], "task": report["task"], **report["metrics"]}], "table"))
        click.echo()
        click.echo(render_rows(report["per_class"], "table"))
        click.echo()
        names = [row["class"] for row in report["per_class"]]
        matrix = [{"true \\ pred": n, **{str(j): v for j, v in enumerate(r)}}
                  for n, r in zip(names, report["confusion_matrix"], strict=True)]
        click.echo("confusion matrix (rows: true class, columns: predicted class index)")
        click.echo(render_rows(matrix, "table"))


@cli.command("pretrain")
@click.argument("backbone")
@click.option("--dataset", "dataset_name", required=True, help="Source dataset (harness list datasets).")
@click.option("--method", type=click.Choice(["supervised", "autoencoder"]), default="supervised", show_default=True,
              help="supervised: train on the labels; autoencoder: reconstruct the images (labels unused).")
@click.option("--epochs", type=int, default=5, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=0.05, show_default=True)
@click.option("--train-limit", type=int)
@click.option("--input-size", type=int)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", help="Registry name (default: BACKBONE-METHOD-DATASET).")
@click.option("--resume", is_flag=True)
@weights_option
@data_options
@format_option
@click.pass_context
def pretrain_command(ctx, backbone, dataset_name, method, epochs, batch_size, lr, train_limit, input_size, seed,
                     name, resume, weights_file, data_dir, download, device, quiet, fmt):
    """Pretrain BACKBONE on a dataset and register the weights as a new model version.

    \b
    Example (offline: no pretrained weights needed):
      harness pretrain cifar_resnet20 --dataset cifar10 --method autoencoder --epochs 5
      harness finetune cifar_resnet20-autoencoder-cifar10 --task fashion-mnist
    """
    from harness.train.pretrain import pretrain
    from harness.train.recipe import Recipe

    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr, train_limit=train_limit, input_size=input_size,
                    seed=seed, budget="pretrain", label_smoothing=0.0)
    ref, entry = with_weights(backbone, weights_file, None)
    catalogue = plugins_from(ctx).catalogue
    with open_store() as store:
        result = pretrain(catalogue, store, ref, dataset_name, method, recipe, name=name, data_dir=data_dir,
                          download=download, device=device, quiet=quiet, resume=resume, backbone_name=entry)
    row = {"model": result.version.ref, **{k: v for k, v in result.metrics.items() if k != "dataset"}}
    click.echo(json.dumps(row, indent=2) if fmt == "json" else render_rows([row], fmt))
