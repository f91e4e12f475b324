"""One exit-1 path: a command that ran and found a failure (a check, a gate, parity) exits through
``harness.cli.app.fail``; the codes mean what the README says (0 ok, 1 failed, 2 user error)."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner
from helpers import ROOT

from harness.cli.app import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail

EXIT_1 = re.compile(r"\b(sys\.exit|\.exit|SystemExit)\(\s*(1|EXIT_FAILED)\s*\)")


def test_no_command_exits_1_but_through_fail():
    found = [f"{path.relative_to(ROOT)}:{number}" for path in sorted((ROOT / "harness").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if EXIT_1.search(line) and "def fail" not in line]
    assert found == ["harness/cli/app.py:" + str(_line_of_fail_raise())], found


def _line_of_fail_raise() -> int:
    lines = (ROOT / "harness/cli/app.py").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("def fail("))
    return next(i for i in range(start, len(lines)) if "raise SystemExit(EXIT_FAILED)" in lines[i]) + 1


def test_fail_says_why_on_stderr_and_exits_1():
    @click.command()
    def failing() -> None:
        click.echo("the result")
        fail("parity FAILED: top-1 agreement 0.9")

    result = CliRunner().invoke(failing)
    assert (EXIT_OK, EXIT_FAILED, EXIT_USAGE) == (0, 1, 2)
    assert result.exit_code == EXIT_FAILED and result.stdout == "the result\n"
    assert result.stderr == "parity FAILED: top-1 agreement 0.9\n"


@pytest.mark.parametrize("args", [("plugins", "--check", "--format", "json")])
def test_a_check_that_passes_exits_0(run_cli, args):
    assert run_cli(*args).exit_code == EXIT_OK


@pytest.mark.parametrize("args,line", [
    (("evaluate",), "Error: Missing argument 'MODEL'; see 'harness evaluate --help'"),
    (("evaluate", "m", "--bogus"), "Error: No such option '--bogus'; see 'harness evaluate --help'"),
    (("--bogus",), "Error: No such option '--bogus'; see 'harness --help'"),
    (("nosuch",), "Error: No such command 'nosuch'; see 'harness --help'"),
    (("registry", "nosuch"), "Error: No such command 'nosuch'; see 'harness registry --help'"),
    (("finetune", "m", "--epochs", "abc"), "Error: Invalid value for '--epochs': 'abc' is not a valid integer "
                                           "range; see 'harness finetune --help'"),
])
def test_a_usage_error_is_one_error_line_that_names_the_help(run_cli, args, line):
    """click's own three lines (Usage:, Try ..., Error:) are one ``Error:`` line here, exit 2."""
    result = run_cli(*args)
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == line + "\n" and result.stdout == ""
