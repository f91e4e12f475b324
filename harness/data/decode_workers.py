"""Worker processes that decode image files for :func:`harness.data.decode.decode_all`.

Plain ``python -c`` child processes talking pickle over their stdin/stdout, rather than a
``multiprocessing`` pool, because each of its start methods costs users something:

- ``spawn`` and ``forkserver`` import the parent's ``__main__`` in every worker, so a user's script
  that calls ``harness.select_models(...)`` without an ``if __name__ == "__main__":`` guard would run
  itself again in each worker;
- ``fork`` copies a process that holds torch's and tqdm's threads, whose locks may be mid-use
  (Python 3.12+ warns about it; 3.14 stopped using it by default).

The children are direct children, reaped when done, so ``getrusage(RUSAGE_CHILDREN)`` counts their
CPU. Each ignores Ctrl-C (the parent stops them) and writes nothing but answers to the pipe (its
stdout is moved to stderr, so a stray print cannot corrupt the stream). Pixels do not cross the
pipes: workers write them into a shared memory-mapped file, and answer with a count. Several chunks
are in flight per worker so that it does not wait for the parent (which, on a busy machine, may not
be scheduled at once) between chunks.
"""

from __future__ import annotations

import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import BinaryIO

from registry import HarnessError

BOOT = ("import os, pickle, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "pipe = os.fdopen(os.dup(1), 'wb'); os.dup2(2, 1); sys.path[:] = pickle.load(sys.stdin.buffer); "
        "from harness.data.decode_workers import serve; serve(sys.stdin.buffer, pipe)")
IN_FLIGHT = 3


class WorkerDied(HarnessError):
    """A worker process ended without answering (killed, out of memory); its stderr says why. Not a
    bug in harness nor in the data: exit 1, one line, with what to do."""

    exit_code = 1


def serve(tasks: BinaryIO, results: BinaryIO) -> None:
    """A worker's loop: ``(target, start, paths, size)`` in, :func:`~harness.data.decode.decode_into`'s
    answer out, until the parent closes the pipe."""
    from harness.data.decode import decode_into

    while True:
        try:
            task = pickle.load(tasks)
        except EOFError:
            return
        pickle.dump(decode_into(*task), results, protocol=pickle.HIGHEST_PROTOCOL)
        results.flush()


class _Chunks:
    """The chunks left to decode into ``target``, shared by this thread and the threads feeding the
    workers; the first damaged file's message stops new chunks from starting."""

    def __init__(self, chunks: list[tuple[int, list[str]]], size: int, target: str,
                 done: Callable[[int], None]) -> None:
        self.pending: queue.SimpleQueue[tuple[int, list[str]]] = queue.SimpleQueue()
        for chunk in chunks:
            self.pending.put(chunk)
        self.size, self.target, self.done = size, target, done
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.deaths: list[int | None] = []  # exit codes of workers that ended without answering

    def take(self) -> tuple[int, list[str]] | None:
        """The next chunk, or None when none is left or a file was found damaged."""
        if self.errors:
            return None
        try:
            return self.pending.get_nowait()
        except queue.Empty:
            return None

    def finished(self, count: int, error: str | None) -> None:
        """A chunk of ``count`` images written (``error`` None) or refused."""
        with self.lock:
            if error is not None:
                self.errors.append(error)
            else:
                self.done(count)

    def decode_here(self) -> None:
        """This thread decodes too, in this process (one worker start-up fewer)."""
        from harness.data.decode import decode_into

        while (chunk := self.take()) is not None:
            start, paths = chunk
            self.finished(len(paths), decode_into(self.target, start, paths, self.size))

    def feed(self, proc: subprocess.Popen[bytes]) -> None:
        """Keep :data:`IN_FLIGHT` chunks sent to ``proc`` and collect its answers, until none is left."""
        assert proc.stdin is not None and proc.stdout is not None
        sent: list[int] = []  # the sizes of the chunks in flight
        try:
            while True:
                while len(sent) < IN_FLIGHT and (chunk := self.take()) is not None:
                    start, paths = chunk
                    pickle.dump((self.target, start, paths, self.size), proc.stdin,
                                protocol=pickle.HIGHEST_PROTOCOL)
                    proc.stdin.flush()
                    sent.append(len(paths))
                if not sent:
                    return
                error = pickle.load(proc.stdout)
                self.finished(sent.pop(0), error)
        except (EOFError, OSError, pickle.UnpicklingError):
            self.deaths.append(proc.poll())


def run_chunks(chunks: list[tuple[int, list[str]]], size: int, target: str, workers: int,
               done: Callable[[int], None]) -> str | None:
    """Decode every ``(start, paths)`` chunk into the ``.npy`` file ``target`` on ``workers`` cores:
    ``workers - 1`` worker processes and this thread (one start-up fewer, ~0.2 CPU-s), calling
    ``done(count)`` (under a lock) as each chunk is written; returns the first damaged file's
    message, after which no new chunk is started. Raises :class:`WorkerDied` when a worker ends
    without answering."""
    work = _Chunks(chunks, size, target, done)
    procs = [_start() for _ in range(workers - 1)]
    threads = [threading.Thread(target=work.feed, args=(p,), daemon=True) for p in procs]
    try:
        for t in threads:
            t.start()
        work.decode_here()
        for t in threads:
            t.join()
    except BaseException:  # Ctrl-C: the workers ignore it, so they are stopped here
        for proc in procs:
            proc.kill()
        raise
    finally:
        _stop(procs)
    if work.deaths and not work.errors:
        code = work.deaths[0]
        why = " (killed: often for want of memory)" if code is not None and code < 0 else ""
        raise WorkerDied(f"a decoding worker process ended without answering (exit code {code}{why}); its error, "
                         "if any, is above; rerun, or decode in this process only: HARNESS_THREADS=1")
    return work.errors[0] if work.errors else None


def _start() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None
    pickle.dump(list(sys.path), proc.stdin)  # the parent's import path (tests, editable installs)
    proc.stdin.flush()
    return proc


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Close each worker's task pipe (it exits at once when idle) and reap it; kill a busy one."""
    for proc in procs:
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
