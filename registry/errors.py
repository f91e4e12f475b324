"""The one error hierarchy of harness, with the exit code each error gives on the command line.

It lives here, not in ``harness``, because ``registry`` must not import ``harness``; the core
re-exports it as ``harness.errors``. Library code raises these; only the CLI turns them into one
``Error: ...`` line and an exit code. Messages name the problem and the fix in one line.

A message about a parameter names it with a ``{param}`` placeholder and ``param=`` (the Python
parameter name, ``batch_size``): ``str(error)`` reads ``batch_size must be at least 1`` in a
notebook, and the CLI renders the same error as ``--batch-size must be at least 1``. Other
parameters the message mentions are ``{param:NAME}`` (``{param:seeds} 1`` reads ``seeds 1`` in
Python and ``--seeds 1`` on the command line).

========================  =====  ==========================================================
error                     exit   raised when
========================  =====  ==========================================================
``UsageError``            2      a bad name, value, option or file given by the user
``UnknownNameError``      2      a name nothing registered (suggests close matches)
``DataError``             2      data or a file is missing, corrupt or in the wrong format
``PluginError``           2      a plugin is broken or conflicts with another one
``EntryError``            2      a plugin built an invalid entry (also a ``ValueError``)
``TrainingError``         1      a run failed on its own (diverged); nothing registered
``ExportError``           1      a model could not be exported to ONNX
``BenchmarkError``        1      a benchmark worker failed or measured nothing usable
``StoreError``            1      the model store is damaged or unwritable
========================  =====  ==========================================================
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable

__all__ = ["BenchmarkError", "DataError", "DuplicateNameError", "EntryError", "ExportError", "HarnessError",
           "PluginError", "StoreError", "TrainingError", "UnknownNameError", "UsageError", "first_line",
           "kind_plural"]

_OTHER_PARAM = re.compile(r"\{param:([A-Za-z_][A-Za-z0-9_]*)\}")
"""``{param:NAME}``: another parameter a message names (see the module docstring)."""


class HarnessError(Exception):
    """Base of every error the harness raises on purpose (as opposed to a bug)."""

    exit_code = 2

    def __init__(self, message: str = "", *, param: str | None = None) -> None:
        self.template = message
        self.param = param
        super().__init__(self.render())

    def render(self, name: Callable[[str], str] | None = None) -> str:
        """The message with ``{param}`` (and each ``{param:NAME}``) filled in by ``name(param)``
        (default: the parameter's own name)."""
        spell = name or (lambda param: param)
        text = self.template
        if self.param is not None:
            text = text.replace("{param}", spell(self.param))
        return _OTHER_PARAM.sub(lambda m: spell(m.group(1)), text) if "{param:" in text else text


class UsageError(HarnessError):
    """The user asked for something that cannot work: bad name, bad value, missing file."""


class UnknownNameError(UsageError, LookupError):
    """A name that nothing registered; the message suggests close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str | None = None, *,
                 message: str | None = None) -> None:
        self.kind = kind
        self.name = name
        known = sorted(set(known))
        self.suggestions = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if message is not None:  # the caller's own words (``no version 9 of x``), no guessed suggestions
            self.suggestions = []
            super().__init__(message)
            return
        message = f"unknown {kind} {name!r}"
        if self.suggestions:
            message += f"; did you mean {' or '.join(repr(s) for s in self.suggestions)}?"
        if hint is None and kind in ("backbone", "dataset", "metric", "task"):
            hint = f"run 'harness list {kind_plural(kind)}' to see all {len(known)}"
        elif hint is None:
            hint = "known: " + ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        super().__init__(f"{message} ({hint})")


class DataError(UsageError):
    """A dataset or file is missing, corrupt or not in the expected format."""


class PluginError(HarnessError):
    """A plugin is broken or conflicts with another one (duplicate name, bad registration)."""


class EntryError(PluginError, ValueError):
    """An entry a plugin built is invalid (bad name, missing callable); raised by its constructor."""


class DuplicateNameError(PluginError):
    """Two registrations of one name; the message names both plugins."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        self.kind = kind
        self.name = name
        self.first = first
        self.second = second
        super().__init__(
            f"{kind} {name!r} is registered twice: by {first} and by {second}; "
            f"uninstall one of them or exclude it with HARNESS_LOAD_PLUGINS"
        )


class TrainingError(HarnessError):
    """The run itself failed (diverged, produced no usable model); nothing was registered."""

    exit_code = 1


class ExportError(HarnessError):
    """The model could not be exported to ONNX (an unsupported operator, a crashing exporter)."""

    exit_code = 1


class BenchmarkError(HarnessError):
    """A benchmark could not measure (a worker process crashed, a runtime fell back)."""

    exit_code = 1


class StoreError(HarnessError):
    """The model store cannot be used as it is (damaged database, unwritable folder)."""

    exit_code = 1


def kind_plural(kind: str) -> str:
    """'backbone' -> 'backbones' (for messages that point at `harness list`)."""
    return kind if kind.endswith("s") else kind + "s"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message``, for an error that becomes one line of a report."""
    text = str(exc).strip()
    line = text.splitlines()[0][:limit] if text else ""
    if isinstance(exc, HarnessError):
        return line or type(exc).__name__
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
