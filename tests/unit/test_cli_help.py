"""Every command's ``--help`` ends with examples, and every example is a command line that parses:
its command exists, its flags are the command's, its values pass the flags' types and choices."""

from __future__ import annotations

import shlex

import click
import pytest

from harness.cli import cli
from harness.cli.app import COMMANDS as BUILTIN


def _commands() -> list[tuple[str, click.Command]]:
    """(path, command) of the root, every group and every leaf command."""
    found: list[tuple[str, click.Command]] = []
    root = click.Context(cli, info_name="harness")

    def walk(command: click.Command, path: str, parent: click.Context) -> None:
        found.append((path, command))
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=path.rsplit(" ", 1)[-1], parent=parent)
            for name in command.list_commands(ctx):
                if command is cli and name not in BUILTIN:
                    continue  # an installed plugin's command is its author's to document
                walk(command.get_command(ctx, name), f"{path} {name}", ctx)

    walk(cli, "harness", root)
    return found


COMMANDS = _commands()


def _examples(command: click.Command) -> list[str]:
    """The command lines under the help's ``Example:`` heading (continued lines joined, ``&&`` split,
    trailing ``(comments)`` dropped)."""
    text = (command.help or "").replace("\\\n", " ")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("Example") and
                  line.strip().endswith(":")), None)
    if start is None:
        return []
    commands = [part.split("  (")[0].strip() for line in lines[start + 1:] for part in line.split(" && ")]
    return [c for c in commands if c.startswith("harness ")]


def _unparsed(ctx: click.Context) -> list[str]:
    """A group's subcommand and its arguments (click 8.2 renamed where it keeps the first)."""
    first = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
    return [*first, *ctx.args]


def _parse(line: str) -> click.Context:
    """Parse ``line`` as click would run it, down to its leaf command, without running anything."""
    args = shlex.split(line)[1:]
    ctx = cli.make_context("harness", list(args), resilient_parsing=False)
    command: click.Command = cli
    while isinstance(command, click.Group) and (rest := _unparsed(ctx)):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"{line}: no command {rest[0]!r}"
        ctx = sub.make_context(rest[0], rest[1:], parent=ctx)
        command = sub
    return ctx


def test_there_are_many_commands():
    assert len([c for _, c in COMMANDS if not isinstance(c, click.Group)]) >= 18


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_help_has_examples_that_parse(path, command):
    examples = _examples(command)
    assert examples, f"{path} --help has no example"
    if path == "harness":
        return  # the root's examples are other commands'
    assert any(e.startswith(path) for e in examples), f"no example of {path} itself: {examples}"
    for line in examples:
        try:
            _parse(line)
        except click.UsageError as exc:
            pytest.fail(f"{path}: example {line!r} does not parse: {exc}")


def test_shell_completion_as_the_readme_documents_it():
    """README: eval "$(_HARNESS_COMPLETE=bash_source harness)"; the script then asks the command."""
    import os
    import subprocess

    from helpers import harness_exe

    script = subprocess.run(harness_exe(), env={**os.environ, "_HARNESS_COMPLETE": "bash_source"},
                            capture_output=True, text=True)
    assert script.returncode == 0 and "_harness_completion" in script.stdout
    words = subprocess.run(harness_exe(), env={**os.environ, "_HARNESS_COMPLETE": "bash_complete",
                                               "COMP_WORDS": "harness select --bud", "COMP_CWORD": "2"},
                           capture_output=True, text=True)
    assert words.stdout.split() == ["plain,--budget"]
