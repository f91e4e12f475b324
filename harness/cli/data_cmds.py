"""``harness data check``: what is wrong with a dataset, before anything is trained on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness.cli.app import HarnessGroup, fail, make_context
from harness.cli.options import INPUT_SIZE, FiniteFloat, format_option
from harness.output import render, to_json


@click.group("data", cls=HarnessGroup)
def data_group() -> None:
    """Look at data before training on it.

    \b
    Examples:
      harness data check fashion-mnist
      harness data check ./photos
    """


@data_group.command("check")
@click.argument("target")
@click.option("--input-size", type=INPUT_SIZE, help="The size images will be trained at "
                                                                 "(default: the task's, or derived from the data).")
@click.option("--near/--no-near", default=True, show_default=True, help="Look for near duplicates (all pairs).")
@click.option("--write-clean", type=click.Path(dir_okay=False), help="Write a manifest (CSV) of the source without "
              "broken files, one of each pair of copies and both of a pair whose labels differ; your files are "
              "untouched.")
@click.option("--force", is_flag=True, help="Let --write-clean replace an existing file.")
@click.option("--test-fraction", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True, help="For a source without a test split (as --data).")
@click.option("--image-column", help="For hf:... sources.")
@click.option("--label-column", help="For hf:... sources.")
@click.option("--label-depth", type=click.IntRange(min=1), default=1, show_default=True,
              help="For an image folder: the folder level that names the class (as --data).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data root for registered datasets.")
@format_option
@click.pass_context
def data_check(ctx: click.Context, target: str, input_size: int | None, near: bool, write_clean: str | None,
               force: bool, test_fraction: float, image_column: str | None, label_column: str | None, label_depth: int,
               data_dir: str | None, fmt: str) -> None:
    """Check TARGET: a task or dataset name, a task file (.toml), an image folder, a manifest or hf:NAME.
    Integrity, labels, exact and near duplicates within and across splits. Exit 1 on errors.

    \b
    Example:
      harness data check ./photos --write-clean clean.csv && harness select --data clean.csv
      harness data check fashion-mnist --format json
    """
    from harness.data.check import check_target
    from harness.data.check import write_clean as write_manifest
    from harness.data.sources import DataSpec
    from registry import UsageError

    spec = None
    if target.startswith("hf:") or (Path(target).expanduser().exists() and not target.endswith(".toml")):
        uri = target if target.startswith("hf:") else str(Path(target).expanduser().resolve())
        spec = DataSpec(uri, test_fraction=test_fraction, image_column=image_column, label_column=label_column,
                        label_depth=label_depth)
    if write_clean and (spec is None or spec.uri.startswith("hf:")):
        raise UsageError("{param} needs an image folder or a manifest as TARGET", param="write_clean")
    if write_clean and Path(write_clean).exists() and not force:  # before minutes of checking, not after
        raise UsageError(f"{write_clean} exists; pass --force to replace it, or name another file")
    with make_context(ctx, data_dir=data_dir) as hctx:
        report, source = check_target(hctx, target, spec=spec, input_size=input_size, near=near)
    if write_clean:
        rows = write_manifest(report, source, Path(write_clean))
        click.echo(f"wrote {write_clean}: {rows} images; left out {_left_out(report.dropped)}", err=True)
    if fmt == "json":
        click.echo(to_json(report.as_dict()))
    else:
        rows_out: list[dict[str, Any]] = [{**f.as_dict(), "items": ", ".join(f.items[:3]) +
                                          (f" (+{len(f.items) - 3})" if len(f.items) > 3 else "")}
                                         for f in report.findings]
        click.echo(render(rows_out, fmt))
    click.echo(f"{report.target}: {sum(report.counts.values())} images, {len(report.errors)} error(s), "
               f"{sum(1 for f in report.findings if f.severity == 'warning')} warning(s) in {report.seconds:.1f}s",
               err=True)
    if report.errors:
        fail()


def _left_out(dropped: dict[str, str]) -> str:
    """'3 (1 broken, 1 copy of another, 1 in pairs whose labels differ: both copies)'."""
    from collections import Counter

    counts = Counter(dropped.values())
    words = {"broken": "broken", "copy": "copy of another",
             "label conflict": "in pairs whose labels differ: both copies"}
    parts = [f"{counts[k]} {words[k]}" for k in words if counts[k]]
    return f"{len(dropped)}" + (f" ({', '.join(parts)})" if parts else "")
