"""``harness plugins``: which plugins loaded, from which distribution, and which failed;
``harness plugins check NAME``: the conformance kit over what one plugin registers."""

from __future__ import annotations

import click

from harness.cli.app import HarnessCommand, HarnessGroup, plugins_from
from harness.cli.options import format_option
from harness.output import render


@click.group("plugins", cls=HarnessGroup, invoke_without_command=True)
@format_option
@click.pass_context
def plugins_command(ctx: click.Context, fmt: str) -> None:
    """List plugins: name, distribution, version, hooks and status (loaded/failed/skipped)."""
    if ctx.invoked_subcommand is not None:
        return
    plugins = plugins_from(ctx)
    rows = [r.as_dict() for r in sorted(plugins.records.values(), key=lambda r: r.name)]
    if fmt == "table":
        for row in rows:
            row.pop("module", None)
    click.echo(render(rows, fmt))


@plugins_command.command("check", cls=HarnessCommand)
@click.argument("plugin")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="A folder holding the plugin's dataset files (datasets are skipped without it).")
@click.option("--export/--no-export", default=True, show_default=True,
              help="Export each backbone to ONNX and compare ONNX Runtime with PyTorch.")
@format_option
@click.pass_context
def check_command(ctx: click.Context, plugin: str, data_dir: str | None, export: bool, fmt: str) -> None:
    """Run the conformance kit (harness.testing) over every entry PLUGIN registers; PLUGIN is a
    plugin name or a distribution name. Exits 1 when a check fails."""
    from harness.testing import check_plugin
    from registry import UsageError

    plugins = plugins_from(ctx)
    results = check_plugin(plugins, plugin, data_dir=data_dir, export=export)
    if not results:
        known = sorted({r.name for r in plugins.records.values()} | {r.distribution for r in plugins.records.values()
                                                                     if r.distribution})
        raise UsageError(f"no entries registered by {plugin!r}; plugins: {', '.join(known)}")
    click.echo(render([r.as_dict() for r in results], fmt))
    failed = [r for r in results if not r.ok]
    click.echo(f"{len(results) - len(failed)} of {len(results)} checks passed", err=True)
    if failed:
        ctx.exit(1)
