"""``harness plugins``: which plugins loaded, from which distribution, and which failed;
``harness plugins check NAME``: the conformance kit over what one plugin registers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from harness.cli.app import HarnessCommand, HarnessGroup, fail, plugins_from
from harness.cli.options import format_option
from harness.output import render

if TYPE_CHECKING:
    from harness.plugins import Plugins


@click.group("plugins", cls=HarnessGroup, invoke_without_command=True)
@click.option("--check", "check", is_flag=True,
              help="Exit 1 when any plugin failed, left entries or commands out, or has a task naming what "
                   "nothing registered.")
@format_option
@click.pass_context
def plugins_command(ctx: click.Context, check: bool, fmt: str) -> None:
    """List plugins: name, distribution, version, status (loaded/partial/failed/skipped), the entries
    each hook registered and every problem. Runs every plugin's registration hooks to find out.

    \b
    Examples:
      harness plugins
      harness plugins --check --format json
      harness plugins check harness-tiny
    """
    if ctx.invoked_subcommand is not None:
        return
    plugins = plugins_from(ctx)
    _add_commands_to_a_probe(plugins)
    records = plugins.audit()
    rows = [r.as_dict() for r in records]
    if fmt == "table":
        for row in rows:
            row.pop("module", None)
            row.pop("hooks", None)
            row["entries"] = ", ".join([*(f"{n} {k}{'s' if n != 1 else ''}" for k, n in row["entries"].items()),
                                        *(f"tracker {t}" for t in row.pop("trackers", []))])
            row["problems"] = "; ".join(row["problems"]) or row.pop("error") or ""
            row.pop("error", None)
    click.echo(render(rows, fmt))
    bad = [r for r in records if r.status in ("failed", "partial")]
    if bad:
        if check:  # what fails the check, on stderr: stdout stays the table or JSON
            for record in bad:
                for problem in [*record.problems, *([record.error] if record.error else [])]:
                    click.echo(f"plugin {record.who} ({record.status}): {problem}", err=True)
        click.echo(f"{len(bad)} plugin(s) with problems: {', '.join(r.name for r in bad)}", err=True)
        if check:
            fail()


def _add_commands_to_a_probe(plugins: Plugins) -> None:
    """Run every ``register_commands`` hook against a scratch root holding the built-in command names,
    so a hook that raises or takes a name already used is in its plugin's record (``plugins`` runs as
    a built-in command, before the root has asked plugins for theirs)."""
    from harness.cli.app import COMMANDS

    probe = click.Group("harness")
    probe.reserved_names = frozenset(COMMANDS)  # type: ignore[attr-defined]  # what add_commands reads
    plugins.add_commands(probe)


@plugins_command.command("check", cls=HarnessCommand)
@click.argument("plugin")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="A folder holding the plugin's dataset files (datasets are skipped without it).")
@click.option("--export/--no-export", default=True, show_default=True,
              help="Export each backbone to ONNX and compare ONNX Runtime with PyTorch.")
@click.option("--only", help="Check only the entries whose name matches this wildcard (timm_resnet1*): "
                             "a zoo of a thousand backbones is checked by sample.")
@format_option
@click.pass_context
def check_command(ctx: click.Context, plugin: str, data_dir: str | None, export: bool, only: str | None,
                  fmt: str) -> None:
    """Run the conformance kit (harness.testing) over every entry PLUGIN registers; PLUGIN is a
    plugin name or a distribution name. Exits 1 when a check fails.

    \b
    Example:
      harness plugins check harness-tiny --data-dir ./data
      harness plugins check timm_backbones --only 'timm_test_*'
    """
    from harness.testing import check_plugin, summary
    from registry import UsageError

    plugins = plugins_from(ctx)
    results = check_plugin(plugins, plugin, data_dir=data_dir, export=export, only=only)
    if not results and only:
        raise UsageError(f"no entry of {plugin!r} matches --only {only!r}")
    if not results:
        known = sorted({r.name for r in plugins.records.values()} | {r.distribution for r in plugins.records.values()
                                                                     if r.distribution})
        raise UsageError(f"no entries registered by {plugin!r}; plugins: {', '.join(known)}")
    click.echo(render([r.as_dict() for r in results], fmt))
    failed = [r for r in results if not r.ok]
    click.echo(summary(results), err=True)
    if failed:
        fail()
