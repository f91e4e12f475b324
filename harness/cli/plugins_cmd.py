"""``harness plugins``: which plugins loaded, from which distribution, and which failed."""

from __future__ import annotations

import click

from harness.cli import cli, format_option, plugins_from
from harness.output import render_rows


@cli.command("plugins")
@format_option
@click.pass_context
def plugins_command(ctx: click.Context, fmt: str) -> None:
    """List plugins: name, distribution, version, hooks and status (loaded/failed/skipped)."""
    plugins = plugins_from(ctx)
    rows = [r.as_dict() for r in sorted(plugins.records.values(), key=lambda r: r.name)]
    if fmt == "table":
        for row in rows:
            row.pop("module", None)
    click.echo(render_rows(rows, fmt))
