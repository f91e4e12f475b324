"""The ``harness`` command line: a thin layer over library functions.

Typed :class:`~registry.HarnessError` s become one-line ``Error: ...`` messages with their exit
code (2 for user errors); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import click

from harness import __version__
from harness.errors import HarnessError
from harness.plugins import Plugins, get_plugins


class CliError(click.ClickException):
    """A HarnessError on its way to the terminal."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def plugins_from(ctx: click.Context) -> Plugins:
    """The Plugins this invocation uses: ``obj=`` from a test, else the process default."""
    found = ctx.find_object(Plugins)
    if found is None:
        try:
            found = get_plugins()
        except HarnessError as exc:
            raise CliError(str(exc), exc.exit_code) from None
    return found


class HarnessGroup(click.Group):
    """Adds plugin commands on first lookup and turns HarnessErrors into clean exits."""

    _plugin_commands_loaded = False

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        if not self._plugin_commands_loaded:
            self._plugin_commands_loaded = True
            plugins_from(ctx).add_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugin_commands(ctx)
            command = super().get_command(ctx, cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            raise CliError(str(exc), exc.exit_code) from None


format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
    show_default=True, help="Output format; json and csv are for machines and go to stdout.",
)


@click.group(cls=HarnessGroup)
@click.version_option(__version__, prog_name="harness")
def cli() -> None:
    """Pick, train, evaluate and ship image classification backbones.

    Plugins (entry-point group 'harness') register backbones, datasets, metrics and tasks.
    """


def main() -> None:
    """Console-script entry point."""
    cli()


from harness.cli import (  # noqa: E402  (commands attach to cli)
    catalogue_cmds,
    onnx_cmds,
    plugins_cmd,
    registry_cmds,
    select_cmds,
    train_cmds,
)

__all__ = [
    "CliError",
    "catalogue_cmds",
    "cli",
    "format_option",
    "main",
    "onnx_cmds",
    "plugins_cmd",
    "plugins_from",
    "registry_cmds",
    "select_cmds",
    "train_cmds",
]
