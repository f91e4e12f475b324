"""``harness list`` and ``harness show``: browse the catalogue without building anything."""

from __future__ import annotations

import click

from harness.cli.app import HarnessCommand, make_context, plugins_from
from harness.cli.options import format_option
from harness.output import render, render_record, to_json
from registry import KINDS

KIND_CHOICE = click.Choice([k + "s" for k in KINDS])
JSON_ONLY = ("budgets", "candidates")
"""Row keys too wide for a table (a task's budgets and the protocol's candidates: the ``quick`` and
``standard`` columns say what those budgets run, ``show TASK`` prints every budget in words)."""


@click.command("list", cls=HarnessCommand)
@click.argument("kind", type=KIND_CHOICE)
@click.argument("pattern", required=False)
@click.option("--tags", is_flag=True, help="Backbones: one row per pretrained weight tag.")
@format_option
@click.pass_context
def list_command(ctx: click.Context, kind: str, pattern: str | None, tags: bool, fmt: str) -> None:
    """List registered KIND, optionally filtered by a wildcard PATTERN.

    \b
    Examples:
      harness list backbones 'resnet*'
      harness list backbones '*.tv_in1k'     (one row per weight tag)
      harness list tasks --format json
    """
    from harness.describe import list_entries
    from harness.output import columns_of

    rows = list_entries(plugins_from(ctx).catalogue, kind, pattern, tags=tags)
    columns = [c for c in columns_of(rows) if c not in JSON_ONLY] if fmt != "json" else None
    click.echo(render(rows, fmt, columns))


@click.command("show", cls=HarnessCommand)
@click.argument("name")
@click.option("--kind", type=click.Choice(list(KINDS)), help="Only look among this kind (cifar10 is both a dataset "
                                                               "and a task).")
@click.option("--measure/--no-measure", default=False, show_default=True,
              help="Backbones: build once (randomly initialised) to count params, feature width and FLOPs "
                   "(imports torch; without it, published figures only and no model library is imported).")
@format_option
@click.pass_context
def show_command(ctx: click.Context, name: str, kind: str | None, measure: bool, fmt: str) -> None:
    """Show everything known about NAME (a backbone[.tag], dataset, metric or task).

    JSON output is always a list: one record per kind that has the name.

    \b
    Examples:
      harness show resnet18.tv_in1k
      harness show cifar_resnet20 --measure
      harness show fashion-mnist --kind task
      harness show timm_resnet18 --format json
    """
    from harness.data.views import split_view
    from harness.describe import describe

    base, view = split_view(name)
    if view is not None:  # a view (fashion-mnist:classes=0-4) is shown as the task/dataset it makes
        from harness.data.views import register_view

        with make_context(ctx, quiet=True) as hctx:
            name = register_view(hctx, base, view)
    records = describe(plugins_from(ctx).catalogue, name, kind, measure=measure)
    if fmt == "json":
        click.echo(to_json(records))
    elif fmt == "csv":
        click.echo(render(records, "csv"))
    else:  # the budgets are printed in words; the protocol's copy of them would be a JSON blob
        shown = [{**r, "protocol": {k: v for k, v in r["protocol"].items() if k != "budgets"}}
                 if r["kind"] == "task" else r for r in records]
        click.echo("\n\n".join(render_record(r) for r in shown))
