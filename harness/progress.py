"""The one channel for progress and logs: stderr, silenced by ``quiet``, never stdout.

Every library function reports through the :class:`Progress` of its :class:`~harness.context.Context`,
so ``--quiet`` on the command line and ``Context(quiet=True)`` in a notebook silence the same
lines. Warnings are printed even when quiet: they say that a result may not be what was asked for.

Lines and bars share the stream: while a bar is open, lines go through ``tqdm.write`` so that
they appear above the bars instead of tearing them. Bars are drawn on a terminal only.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TextIO


class Progress:
    """Lines and progress bars on stderr (or ``stream``).

    :param lines: print :meth:`info` lines (a nested call can keep its bars and drop its lines:
        select shows each candidate's epoch bar but not its epoch lines).
    :param prefix: put before every bar's description (the candidate in work).
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None,
                 sink: Callable[[str], None] | None = None, *, lines: bool = True, prefix: str = "") -> None:
        self.quiet = quiet
        self.lines = lines
        self.prefix = prefix
        self._stream = stream
        self._sink = sink

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def _write(self, line: str) -> None:
        if self._sink is not None:
            self._sink(line)
        elif _open_bars:
            from tqdm import tqdm

            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def info(self, message: str) -> None:
        """A progress line (one per stage or epoch); nothing when quiet."""
        if not self.quiet and self.lines:
            self._write(message)

    def warn(self, message: str) -> None:
        """Something the user should know about the result; printed even when quiet."""
        self._write(f"harness: warning: {message}")

    def bar(self, total: int, desc: str, unit: str = "it", *, leave: bool = False) -> Any:
        """A tqdm bar on the stream (drawn only on a terminal, never when quiet)."""
        return _bar_class()(total=total, desc=f"{self.prefix}{desc}", unit=unit, file=self.stream, leave=leave,
                            dynamic_ncols=True, disable=True if self.quiet else None)

    def child(self, quiet: bool | None = None, *, lines: bool | None = None, prefix: str | None = None) -> Progress:
        """The same channel for a nested call: quieter, without lines, or with a bar prefix."""
        return Progress(self.quiet if quiet is None else (quiet or self.quiet), self._stream, self._sink,
                        lines=self.lines if lines is None else (lines and self.lines),
                        prefix=self.prefix if prefix is None else prefix)


_open_bars: list[Any] = []


@functools.cache
def _bar_class() -> Any:
    """tqdm (imported on first use) with bars that register themselves while drawn, so that lines
    written meanwhile go through ``tqdm.write``."""
    from tqdm import tqdm

    class TrackedBar(tqdm):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            if not self.disable:
                _open_bars.append(self)

        def close(self) -> None:
            if self in _open_bars:
                _open_bars.remove(self)
            super().close()

    return TrackedBar


QUIET = Progress(quiet=True)
