"""The ``harness`` command line: a thin layer over library functions (see :mod:`harness.cli.app`)."""

from harness.cli.app import CliError, HarnessCommand, HarnessGroup, cli, main, plugins_from

__all__ = ["CliError", "HarnessCommand", "HarnessGroup", "cli", "main", "plugins_from"]
