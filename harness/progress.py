"""The one channel for progress and logs: stderr, silenced by ``quiet``, never stdout.

Every library function reports through the :class:`Progress` of its :class:`~harness.context.Context`,
so ``--quiet`` on the command line and ``Context(quiet=True)`` in a notebook silence the same
lines. Warnings are printed even when quiet: they say that a result may not be what was asked for.

Lines and bars share the stream: while a bar is open, lines go through ``tqdm.write`` so that
they appear above the bars instead of tearing them. Bars are drawn on a terminal only; off a
terminal (a log file, CI, a pipe) a bar is a :class:`LogBar`, which prints a plain line now and
then, so that a long decode or epoch in a log shows it is alive and how long it has left.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TextIO

LOG_EVERY_S = 10.0
"""Off a terminal, a bar's lines are at least this many seconds apart..."""
LOG_EVERY_FRACTION = 0.1
"""...and at least this share of the total apart (the rarer of the two: at most ~10 lines a bar)..."""
LOG_MAX_GAP_S = 60.0
"""...except that a slow bar still prints a line a minute, so a log never looks hung."""


class Progress:
    """Lines and progress bars on stderr (or ``stream``).

    :param lines: print :meth:`info` lines (a nested call can keep its bars and drop its lines:
        select shows each candidate's epoch bar but not its epoch lines).
    :param prefix: put before every bar's description (the candidate in work).
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None,
                 sink: Callable[[str], None] | None = None, *, lines: bool = True, prefix: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet = quiet
        self.lines = lines
        self.prefix = prefix
        self._stream = stream
        self._sink = sink
        self._clock = clock

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
        """A tqdm bar on a terminal; off one, a :class:`LogBar` printing a plain line now and then;
        nothing when quiet. Both take ``update``, ``n =``, ``set_description``, ``set_postfix``, ``close``."""
        if not self.quiet and not _isatty(self.stream):
            return LogBar(total, f"{self.prefix}{desc}", unit, self._write, self._clock)
        return _bar_class()(total=total, desc=f"{self.prefix}{desc}", unit=unit, file=self.stream, leave=leave,
                            dynamic_ncols=True, disable=True if self.quiet else None)

    @contextlib.contextmanager
    def using(self) -> Iterator[Progress]:
        """Make this the :func:`current` progress within the block (for code below a plugin hook,
        such as a dataset loader's decoding, which is not handed a context)."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def child(self, quiet: bool | None = None, *, lines: bool | None = None, prefix: str | None = None) -> Progress:
        """The same channel for a nested call: quieter, without lines, or with a bar prefix."""
        return Progress(self.quiet if quiet is None else (quiet or self.quiet), self._stream, self._sink,
                        lines=self.lines if lines is None else (lines and self.lines),
                        prefix=self.prefix if prefix is None else prefix, clock=self._clock)


_current: ContextVar[Progress | None] = ContextVar("harness_progress", default=None)


def current() -> Progress:
    """The progress set by the innermost :meth:`Progress.using` (so ``--quiet`` reaches a loader's
    decode bar), else a default one on stderr."""
    return _current.get() or Progress()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or file-like stream without isatty
        return False


class LogBar:
    """A progress bar for logs: plain lines such as ``decoding 20000 images at 64px: 4000/20000 (20%),
    812 img/s, ~20 s left``, at most one per :data:`LOG_EVERY_S` and per :data:`LOG_EVERY_FRACTION`
    of the total (the rarer), but one at least every :data:`LOG_MAX_GAP_S`. A bar done within
    :data:`LOG_EVERY_S` prints nothing (the stage's own line says it finished); one that printed
    prints a last line when closed, so the log shows it finished and how fast."""

    def __init__(self, total: int, desc: str, unit: str, write: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.disable = False
        self._write, self._clock = write, clock
        self._started = self._last_time = clock()
        self._last_n = 0
        self._printed = False
        self._postfix = ""

    def __enter__(self) -> LogBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._maybe_log()

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc
        self._maybe_log()

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self._postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def refresh(self) -> None:
        self._maybe_log()

    def close(self) -> None:
        if self._printed and self._last_n != self.n:
            self._log(final=True)
        self._printed = False

    def _maybe_log(self) -> None:
        now = self._clock()
        since = now - self._last_time
        if since < LOG_EVERY_S or self.n == self._last_n:
            return
        if since >= LOG_MAX_GAP_S or not self.total or (self.n - self._last_n) >= LOG_EVERY_FRACTION * self.total:
            self._log()

    def _log(self, final: bool = False) -> None:
        now = self._clock()
        elapsed = max(now - self._started, 1e-9)
        rate = self.n / elapsed
        parts = [f"{self.n}/{self.total} ({self.n / self.total:.0%})" if self.total else f"{self.n}",
                 _rate(rate, self.unit)]
        if final:
            parts.append(f"in {_duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"~{_duration((self.total - self.n) / rate)} left")
        if self._postfix:
            parts.append(self._postfix)
        self._write(f"{self.desc}: {', '.join(parts)}")
        self._printed, self._last_time, self._last_n = True, now, self.n


def _rate(per_s: float, unit: str) -> str:
    """``812 img/s``, or ``40 s/stage`` for slow bars (a rate of 0.03 reads badly)."""
    if per_s >= 1 or per_s == 0:
        return f"{per_s:,.0f} {unit}/s" if per_s >= 10 else f"{per_s:.1f} {unit}/s"
    return f"{_duration(1 / per_s)}/{unit}"


def _duration(seconds: float) -> str:
    if seconds < 99.5:
        return f"{seconds:.0f} s"
    if seconds < 600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


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
