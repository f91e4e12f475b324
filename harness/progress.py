"""The one channel for progress and logs: stderr, silenced by ``quiet``, never stdout.

Every library function reports through the :class:`Progress` of its :class:`~harness.context.Context`,
so ``--quiet`` on the command line and ``Context(quiet=True)`` in a notebook silence the same
lines. Warnings are printed even when quiet: they say that a result may not be what was asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO


class Progress:
    """Lines and progress bars on stderr (or ``stream``)."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None,
                 sink: Callable[[str], None] | None = None) -> None:
        self.quiet = quiet
        self._stream = stream
        self._sink = sink

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def _write(self, line: str) -> None:
        if self._sink is not None:
            self._sink(line)
        else:
            print(line, file=self.stream, flush=True)

    def info(self, message: str) -> None:
        """A progress line (one per stage or epoch); nothing when quiet."""
        if not self.quiet:
            self._write(message)

    def warn(self, message: str) -> None:
        """Something the user should know about the result; printed even when quiet."""
        self._write(f"harness: warning: {message}")

    def bar(self, total: int, desc: str, unit: str = "it") -> Any:
        """A tqdm bar on the stream (drawn only on a terminal, never when quiet)."""
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=False, dynamic_ncols=True,
                    disable=True if self.quiet else None)

    def child(self, quiet: bool | None = None) -> Progress:
        """The same channel, quieter for a nested call (select keeps fine-tuning's epoch lines quiet)."""
        return Progress(self.quiet if quiet is None else (quiet or self.quiet), self._stream, self._sink)


QUIET = Progress(quiet=True)
