"""``harness zoo build|list``: pretrained models made here, offline, as select candidates."""

from __future__ import annotations

import click

from harness.cli.app import HarnessGroup, make_context
from harness.cli.options import executor_options, format_option, make_executor
from harness.output import render


@click.group("zoo", cls=HarnessGroup)
def zoo_group() -> None:
    """A model zoo built on this machine: select compares it with --candidates zoo:NAME.

    \b
    Examples:
      harness zoo build
      harness zoo list
      harness select --task cifar10 --candidates 'zoo:default'
    """


@zoo_group.command("build")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False, exists=True),
              help="A zoo spec (TOML); default: the built-in 'default' zoo.")
@click.option("--quiet", is_flag=True, help="No progress bars or epoch lines on stderr.")
@format_option
@executor_options
@click.pass_context
def zoo_build(ctx: click.Context, spec_path: str | None, quiet: bool, fmt: str, executor: str,
              ray_address: str | None, cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Pretrain and register every model of the zoo that is not registered yet (run it again to
    resume); one row per model.

    \b
    Example:
      harness zoo build
      harness select --task 'fashion-mnist:classes=5-9,per_class=50' --candidates zoo:default
      harness zoo build --executor ray --cpus-per-trial 1
    """
    from harness.jobs.zoo import build, read_spec

    spec = read_spec(spec_path)
    runner = make_executor(executor, ray_address, cpus_per_trial, gpus_per_trial)
    with make_context(ctx, quiet=quiet) as hctx:
        rows = build(hctx, spec, runner)
    click.echo(render(rows, fmt))


@zoo_group.command("list")
@click.argument("name", default="default")
@format_option
@click.pass_context
def zoo_list(ctx: click.Context, name: str, fmt: str) -> None:
    """The models of zoo NAME (default: default) registered here, each with its pretraining quality
    on held-out source images: val_accuracy (supervised), val_pair_accuracy (contrastive: how often an
    image's other augmented view is its nearest of the batch's 2x256 views; chance is 1/511) or
    val_reconstruction_mse (autoencoder, lower is better).

    \b
    Examples:
      harness zoo list
      harness zoo list default --format json
    """
    from harness.jobs.zoo import QUALITY_KEYS, built

    with make_context(ctx) as hctx:
        rows = [{"model": v.ref, "backbone": v.backbone, "method": v.recipe.get("method"), "source": v.dataset,
                 **{k: v.metrics.get("pretrain", {}).get(k) for k in QUALITY_KEYS}}
                for v in sorted(built(hctx, name).values(), key=lambda v: v.ref)]
    click.echo(render(rows, fmt))
