"""The ``harness`` command group: explicit, lazy command registration and the one error rule.

Built-in commands are listed in :data:`COMMANDS` as ``module:attribute`` and imported only when
looked up, so ``harness --version`` imports none of them and no torch. Every command runs through
:class:`HarnessCommand`, which turns a :class:`~registry.HarnessError` into one ``Error: ...``
line with the error's exit code, naming parameters by their flags (``--batch-size``). Anything
else is a bug: ``--debug`` (or ``HARNESS_DEBUG=1``) shows its traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from harness import __version__
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.context import Context
    from harness.plugins import Plugins

COMMANDS = {
    "plugins": "harness.cli.plugins_cmd:plugins_command",
    "list": "harness.cli.catalogue_cmds:list_command",
    "show": "harness.cli.catalogue_cmds:show_command",
    "finetune": "harness.cli.train_cmds:finetune_command",
    "pretrain": "harness.cli.train_cmds:pretrain_command",
    "evaluate": "harness.cli.train_cmds:evaluate_command",
    "registry": "harness.cli.registry_cmds:registry_group",
    "export": "harness.cli.onnx_cmds:export_command",
    "check-onnx": "harness.cli.onnx_cmds:check_onnx_command",
    "bench": "harness.cli.onnx_cmds:bench_command",
    "select": "harness.cli.select_cmds:select_command",
    "leaderboard": "harness.cli.select_cmds:leaderboard_command",
    "report": "harness.cli.select_cmds:report_command",
    "task": "harness.cli.task_cmds:task_group",
    "data": "harness.cli.data_cmds:data_group",
    "zoo": "harness.cli.zoo_cmds:zoo_group",
    "study": "harness.cli.study_cmds:study_group",
    "gate": "harness.cli.gate_cmd:gate_command",
    "card": "harness.cli.gate_cmd:card_command",
    "robustness": "harness.cli.robustness_cmd:robustness_command",
}


EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
"""The exit codes (README, "Commands"): done; a check, gate or run that failed (its result printed
already); a user error, refused before any work. Errors carry theirs (``HarnessError.exit_code``)."""


class CliError(click.ClickException):
    """A HarnessError on its way to the terminal."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares a ClassVar; ours varies per error


def fail(message: str | None = None) -> NoReturn:
    """End the command with :data:`EXIT_FAILED`, after ``message`` (on stderr) when given: the one
    way a command exits 1 on purpose (parity below tolerance, a refused gate, data or store
    problems, a plugin that fails its checks)."""
    if message:
        click.echo(message, err=True)
    raise SystemExit(EXIT_FAILED)


def flag_name(command: click.Command, param: str) -> str:
    """How the command line spells the Python parameter ``param`` (``--batch-size``, ``MODEL``); a
    parameter the command keeps under another name is found by its flag (the API's ``data`` is
    ``--data``, stored as ``data_uri``)."""
    flag = "--" + param.replace("_", "-")
    for p in command.params:
        if p.name == param or (isinstance(p, click.Option) and flag in p.opts):
            if isinstance(p, click.Option):
                return max(p.opts, key=len)
            return p.human_readable_name
    return param


def cli_error(exc: HarnessError, command: click.Command | None) -> CliError:
    message = exc.render((lambda p: flag_name(command, p)) if command is not None else None)
    return CliError(message, exc.exit_code)


def debugging() -> bool:
    """``--debug`` or ``HARNESS_DEBUG``: show tracebacks instead of one-line errors."""
    return bool(os.environ.get("HARNESS_DEBUG")) or "--debug" in sys.argv


def environment_error(exc: BaseException) -> CliError | None:
    """One line for the failures that come from the machine, not from harness or the user: a full
    disk, a read-only or vanished folder, a damaged store database (exit 1). None for anything else."""
    import errno
    import sqlite3

    text = str(exc).lower()
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.OperationalError) and ("disk is full" in text or "disk i/o" in text):
        full = True
    elif isinstance(exc, sqlite3.OperationalError) and "readonly" in text:
        return CliError(f"the model store is read-only ({exc}); point HARNESS_HOME at a folder you can write to",
                        EXIT_FAILED)
    elif isinstance(exc, sqlite3.DatabaseError):
        return CliError(f"the model store database is damaged or unreadable ({exc}); nothing was changed. Run "
                        "'harness registry check', restore store.db from a backup, or point HARNESS_HOME elsewhere",
                        EXIT_FAILED)
    if full:
        filename = getattr(exc, "filename", None)  # OSError has one, sqlite3's errors do not
        where = f" writing {filename}" if filename else ""
        return CliError(f"no space left on the device{where}; nothing partial was kept. Free some space (or point "
                        "HARNESS_HOME / HARNESS_CACHE / --out / TMPDIR at another disk) and run the command again",
                        EXIT_FAILED)
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return CliError(f"cannot write {exc.filename or 'a file'}: {exc.strerror}; point HARNESS_HOME / --out at a "
                        "folder you can write to", EXIT_FAILED)
    return None


class OneLineUsageError(click.UsageError):
    """A click usage error (missing argument, unknown option or command, bad value) as one line,
    ``Error: <what>; see 'harness <command> --help'``, exit 2: not click's usage and hint lines."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", file=file, err=file is None)


def one_line(exc: click.UsageError) -> click.UsageError:
    """``exc`` as a :class:`OneLineUsageError` naming the command's ``--help``; a bare group's help
    (``harness registry``: click's NoArgsIsHelpError) is shown as it is."""
    no_args = getattr(click.exceptions, "NoArgsIsHelpError", None)
    if isinstance(exc, OneLineUsageError) or (no_args is not None and isinstance(exc, no_args)):
        return exc
    text = " ".join(exc.format_message().split()).replace(". (Did you mean", " (did you mean").rstrip(".")
    names: list[str] = []
    at = exc.ctx
    while at is not None and at.parent is not None:  # the root is 'harness' however it was started
        names.insert(0, at.info_name or "")
        at = at.parent
    where = " ".join(["harness", *names])
    return OneLineUsageError(f"{text}; see '{where} --help'", exc.ctx)


class HarnessCommand(click.Command):
    """A command whose HarnessErrors (and full disks, read-only folders, damaged databases) become
    one clean line with the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            raise cli_error(exc, self) from None
        except Exception as exc:
            error = None if debugging() else environment_error(exc)
            if error is None:
                raise
            raise error from None


class HarnessGroup(click.Group):
    """A group whose subcommands are HarnessCommands (``harness registry ...``)."""

    command_class = HarnessCommand

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        """As click's, with the close matches of a misspelt command (``harness lst``: did you mean 'list')."""
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            import difflib

            close = difflib.get_close_matches(args[0] if args else "", self.list_commands(ctx), n=3, cutoff=0.6)
            if not close or "No such command" not in exc.message:
                raise
            guess = " or ".join(repr(name) for name in close)
            raise click.UsageError(f"{exc.message.rstrip('.')} (did you mean {guess}?)", ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # parsing a subcommand's arguments, or no such subcommand
            raise one_line(exc) from None
        except HarnessError as exc:  # a plugin's own command that raised one
            raise cli_error(exc, None) from None
        except Exception as exc:
            error = None if debugging() else environment_error(exc)
            if error is None:
                raise
            raise error from None


class RootGroup(HarnessGroup):
    """The root: built-in commands imported on lookup, then plugins' commands."""

    _plugin_commands_loaded = False
    reserved_names = frozenset(COMMANDS)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["harness.argv"] = list(args)  # the command as typed, for records that say how a thing was made
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # harness --bogus
            raise one_line(exc) from None

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        if not self._plugin_commands_loaded:
            self._plugin_commands_loaded = True
            try:
                plugins_from(ctx).add_commands(self)
            except HarnessError as exc:  # strict mode: a plugin's command is broken
                raise cli_error(exc, None) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands(ctx)
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, _, attr = COMMANDS[cmd_name].partition(":")
            return getattr(importlib.import_module(module), attr)
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugin_commands(ctx)
            command = super().get_command(ctx, cmd_name)
        return command


def plugins_from(ctx: click.Context) -> Plugins:
    """The Plugins this invocation uses: ``obj=`` from a test, else the process default."""
    from harness.plugins import Plugins, get_plugins

    found = ctx.find_object(Plugins)
    if found is None:
        try:
            found = get_plugins()
        except HarnessError as exc:
            raise CliError(str(exc), exc.exit_code) from None
    return found


def make_context(ctx: click.Context, **options: Any) -> Context:
    """A library :class:`~harness.context.Context` from this invocation's plugins and options
    (``data_dir``, ``download``, ``device``, ``quiet``, ``track``; absent ones keep their defaults;
    trackers default to ``$HARNESS_TRACK`` and are checked here, before any work)."""
    from harness.context import Context, DataOptions
    from harness.track import chosen

    data = DataOptions(options.get("data_dir"), options.get("download"))  # None: unless an env var forbids
    plugins = plugins_from(ctx)
    return Context(plugins, data=data, device=options.get("device") or "auto",
                   quiet=bool(options.get("quiet", False)), track=chosen(plugins, options.get("track")))


def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--version``: the version, and the threads and memory this process would use (and why)."""
    if value and not ctx.resilient_parsing:
        from harness.environment import limits_summary

        click.echo(f"harness, version {__version__}\n{limits_summary()}")
        ctx.exit()


def _threads(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--threads N`` (or ``HARNESS_THREADS``): checked here, one line and exit 2 when it is not a
    count; made this process's setting (torch, decoding, ONNX Runtime) and its children's."""
    if value is None or ctx.resilient_parsing:
        return
    from harness.environment import THREADS_ENV, parse_threads, use_threads

    try:
        count = parse_threads(value, f"--threads/{THREADS_ENV}")
    except HarnessError as exc:
        raise CliError(str(exc), exc.exit_code) from None
    os.environ[THREADS_ENV] = str(count)
    use_threads(count)


@click.group(cls=RootGroup)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version, and the threads and memory harness would use, and exit.")
@click.option("--debug", is_flag=True, envvar="HARNESS_DEBUG", help="Show Python tracebacks of unexpected errors.")
@click.option("--threads", metavar="N", envvar="HARNESS_THREADS", expose_value=False, is_eager=True, callback=_threads,
              help="CPU threads for torch, ONNX Runtime and decoding (default: the cgroup CPU quota and the CPU "
                   "affinity; or $HARNESS_THREADS).")
def cli(debug: bool) -> None:
    """Pick, train, evaluate and ship image classification backbones.

    Plugins (entry-point group 'harness') register backbones, datasets, metrics and tasks.

    \b
    Examples:
      harness select --task fashion-mnist --budget quick
      harness list backbones 'resnet*'
      harness finetune resnet18.tv_in1k --task cifar10 --epochs 5
    """


def main() -> None:
    """Console-script entry point: unexpected errors are one line (exit 1) unless --debug."""
    try:
        cli(standalone_mode=True)
    except Exception as exc:  # a bug: say so in one line; --debug shows where
        if debugging():
            raise
        fail(f"Error: internal error ({type(exc).__name__}: {str(exc).strip()[:300]}); rerun with --debug for the "
             "traceback and report it")
