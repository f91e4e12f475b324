"""``harness plugins``: which plugins loaded, from which distribution, and which failed."""

from __future__ import annotations

import click

from harness.cli.app import HarnessCommand, plugins_from
from harness.cli.options import format_option
from harness.output import render


@click.command("plugins", cls=HarnessCommand)
@format_option
@click.pass_context
def plugins_command(ctx: click.Context, fmt: str) -> None:
    """List plugins: name, distribution, version, hooks and status (loaded/failed/skipped)."""
    plugins = plugins_from(ctx)
    rows = [r.as_dict() for r in sorted(plugins.records.values(), key=lambda r: r.name)]
    if fmt == "table":
        for row in rows:
            row.pop("module", None)
    click.echo(render(rows, fmt))
