"""``harness task add|remove``: save a task made from your data, usable everywhere by name."""

from __future__ import annotations

from typing import Any

import click

from harness.cli.app import HarnessGroup, make_context
from harness.cli.options import INPUT_SIZE, data_spec, format_option, task_source_options
from harness.output import render


def _names(text: str | None) -> tuple[str, ...] | None:
    return tuple(n.strip() for n in text.split(",") if n.strip()) if text else None


@click.group("task", cls=HarnessGroup)
def task_group() -> None:
    """Tasks made from your own data (saved under $HARNESS_HOME/tasks/, listed by 'harness list tasks').

    \b
    Examples:
      harness task add photos --data ./photos
      harness task remove photos
    """


@task_group.command("add")
@click.argument("name")
@task_source_options
@click.option("--input-size", type=INPUT_SIZE, help="Train at this size (default: from the images).")
@click.option("--metrics", help="Comma-separated quality metrics; the first ranks (default: accuracy,macro_f1,"
                                "top5_accuracy,ece).")
@click.option("--candidates", help="Comma-separated default candidates for select (default: by input size).")
@click.option("--force", is_flag=True, help="Replace a saved task of that name.")
@click.option("--decode/--no-decode", default=True, show_default=True,
              help="Decode every image now (at the quick budget's size, kept in the decoded cache): a damaged "
                   "file stops here, not in the first run. --no-decode only lists and opens a sample.")
@format_option
@click.pass_context
def task_add(ctx: click.Context, name: str, input_size: int | None, metrics: str | None, candidates: str | None,
             force: bool, decode: bool, fmt: str, **source: Any) -> None:
    """Save a task NAME made from --data (a folder, a manifest or hf:NAME), checked now: the layout,
    the classes, a sample of image sizes and (unless --no-decode) every image decoded once, into
    the decoded cache the first select then reads. Exact copies and near duplicates are 'harness
    data check's to find.

    \b
    Example:
      harness task add photos --data ./photos
      harness select --task photos --budget quick
    """
    from harness.data.datatask import add_entries, decode_check, make_spec, save, slug, tasks_dir
    from registry import UsageError

    spec_source = data_spec(source)
    if spec_source is None:
        raise click.UsageError("--data is required: the images the task is made from")
    if slug(name) != name:
        raise UsageError(f"task name {name!r}: use lower-case letters, digits and '-' (e.g. {slug(name)!r})")
    with make_context(ctx) as hctx:
        other = hctx.catalogue.tasks.get(name) if name in hctx.catalogue.tasks else None
        if other is not None and not other.description.startswith("your data:"):
            raise UsageError(f"{name!r} is a task of {other.plugin}; choose another name")
        chosen = _names(metrics)
        for metric in chosen or ():
            hctx.catalogue.metrics.get(metric)
        spec = make_spec(name, spec_source, input_size=input_size, metrics=chosen, candidates=_names(candidates))
        if not force and (tasks_dir(hctx.store.home) / f"{spec.name}.toml").exists():
            save(spec, hctx.store.home)  # refuses, naming --force, before any decoding
        checked = decode_check(hctx, spec) if decode else ("not decoded (--no-decode): a damaged image surfaces at "
                                                           "the first run; 'harness data check' finds them all")
        path = save(spec, hctx.store.home, force=force)
        add_entries(hctx.catalogue, spec)  # usable by name in this process too (a notebook, a test)
    for line in spec.notes:
        click.echo(line, err=True)
    click.echo(checked, err=True)
    click.echo(render([{"task": spec.name, "data": spec.data.uri, "classes": len(spec.class_names),
                        "train_images": spec.train_images, "input_size": spec.input_size, "file": str(path)}], fmt))


@task_group.command("remove")
@click.argument("name")
@click.pass_context
def task_remove(ctx: click.Context, name: str) -> None:
    """Delete the saved task NAME (its models stay in the store).

    \b
    Example:
      harness task remove photos
    """
    from harness.data.datatask import tasks_dir
    from registry import UnknownNameError

    with make_context(ctx) as hctx:
        folder = tasks_dir(hctx.store.home)
    path = folder / f"{name}.toml"
    if not path.is_file():
        known = [p.stem for p in folder.glob("*.toml")] if folder.is_dir() else []
        raise UnknownNameError("saved task", name, known, hint=f"saved tasks: {', '.join(known) or 'none'}")
    path.unlink()
    click.echo(f"removed task {name} ({path})")
