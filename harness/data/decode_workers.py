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

BOOT = ("import os, pickle, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "pipe = os.fdopen(os.dup(1), 'wb'); os.dup2(2, 1); sys.path[:] = pickle.load(sys.stdin.buffer); "
        "from harness.data.decode_workers import serve; serve(sys.stdin.buffer, pipe)")
IN_FLIGHT = 3


class WorkerDied(RuntimeError):
    """A worker process ended without answering (killed, out of memory); its stderr says why."""


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


def run_chunks(chunks: list[tuple[int, list[str]]], size: int, target: str, workers: int,
               done: Callable[[int], None]) -> str | None:
    """Decode every ``(start, paths)`` chunk into the ``.npy`` file ``target`` on ``workers`` cores:
    ``workers - 1`` worker processes and this thread (one start-up fewer, ~0.2 CPU-s), calling
    ``done(count)`` (under a lock) as each chunk is written; returns the first damaged file's
    message, after which no new chunk is started. Raises :class:`WorkerDied` when a worker ends
    without answering."""
    from harness.data.decode import decode_into

    pending: queue.SimpleQueue[tuple[int, list[str]]] = queue.SimpleQueue()
    for chunk in chunks:
        pending.put(chunk)
    lock = threading.Lock()
    errors: list[str] = []
    deaths: list[int | None] = []
    procs = [_start() for _ in range(workers - 1)]

    def feed(proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        sent: list[int] = []  # the sizes of the chunks in flight
        try:
            while True:
                while len(sent) < IN_FLIGHT and not errors:
                    try:
                        start, paths = pending.get_nowait()
                    except queue.Empty:
                        break
                    pickle.dump((target, start, paths, size), proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                    proc.stdin.flush()
                    sent.append(len(paths))
                if not sent:
                    return
                error = pickle.load(proc.stdout)
                count = sent.pop(0)
                with lock:
                    if error is not None:
                        errors.append(error)
                    else:
                        done(count)
        except (EOFError, OSError, pickle.UnpicklingError):
            deaths.append(proc.poll())

    threads = [threading.Thread(target=feed, args=(p,), daemon=True) for p in procs]
    try:
        for t in threads:
            t.start()
        while not errors:  # this thread decodes too, in this process
            try:
                start, paths = pending.get_nowait()
            except queue.Empty:
                break
            error = decode_into(target, start, paths, size)
            with lock:
                if error is not None:
                    errors.append(error)
                else:
                    done(len(paths))
        for t in threads:
            t.join()
    except BaseException:  # Ctrl-C: the workers ignore it, so they are stopped here
        for proc in procs:
            proc.kill()
        raise
    finally:
        _stop(procs)
    if deaths and not errors:
        raise WorkerDied(f"a decoding worker process ended without answering (exit code {deaths[0]}); its "
                         "error, if any, is above")
    return errors[0] if errors else None


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
