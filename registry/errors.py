"""Typed errors raised by the catalogue and the store.

They live here, not in ``harness``, because ``registry`` must not import ``harness``; the core
re-exports them as ``harness.errors``. Only the CLI turns them into messages and exit codes: every
error carries the exit code the CLI should use, and its message is one line naming the problem
and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """Base of every error the harness raises on purpose (as opposed to a bug)."""

    exit_code = 2


class UsageError(HarnessError):
    """The user asked for something that cannot work: bad name, bad value, missing file."""


class UnknownNameError(UsageError, LookupError):
    """A name that nothing registered; the message suggests close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str | None = None) -> None:
        self.kind = kind
        self.name = name
        known = sorted(set(known))
        self.suggestions = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        message = f"unknown {kind} {name!r}"
        if self.suggestions:
            message += f"; did you mean {' or '.join(repr(s) for s in self.suggestions)}?"
        if hint is None and kind in ("backbone", "dataset", "metric", "task"):
            hint = f"run 'harness list {kind_plural(kind)}' to see all {len(known)}"
        elif hint is None:
            hint = "known: " + ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        super().__init__(f"{message} ({hint})")


class PluginError(HarnessError):
    """A plugin is broken or conflicts with another one (duplicate name, bad registration)."""


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


class DataError(UsageError):
    """A dataset or file is missing, corrupt or not in the expected format."""


def kind_plural(kind: str) -> str:
    """'backbone' -> 'backbones' (for messages that point at `harness list`)."""
    return kind if kind.endswith("s") else kind + "s"
