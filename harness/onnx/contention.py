"""Is the machine quiet enough to time on? Latency measured while other processes use the CPU is
an artefact (eager PyTorch slowed 400x beside a training job on 2 cores), so a benchmark checks
before and after, and calls its figures unreliable rather than printing them as if they were not.

``busy_cores`` samples ``/proc/stat`` over a short window while this process sleeps: any CPU time
used in that window was used by someone else.
"""

from __future__ import annotations

import os
import time

SPREAD_LIMIT = 1.5
"""p90 / median above this means the timings of one row varied too much to trust its median."""
BUSY_LIMIT = 0.5
"""Other processes using more than this many cores make the machine too busy to time on."""


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cores(window: float = 0.3) -> float | None:
    """How many cores other processes kept busy during ``window`` seconds (None where unknown)."""
    first = _cpu_times()
    time.sleep(window)
    second = _cpu_times()
    if first is None or second is None or second[1] == first[1]:
        return None
    return round((second[0] - first[0]) / (second[1] - first[1]) * (os.cpu_count() or 1), 2)


def timing_problems(busy: list[float | None], spreads: dict[str, float]) -> list[str]:
    """Why the timings should not be trusted (empty when they can be)."""
    problems = []
    worst = max((b for b in busy if b is not None), default=None)
    if worst is not None and worst > BUSY_LIMIT:
        problems.append(f"machine busy: other processes used {worst:.1f} of {os.cpu_count()} cores")
    noisy = [f"{name} p90/median {s:.1f}" for name, s in spreads.items() if s > SPREAD_LIMIT]
    if noisy:
        problems.append("timings spread: " + ", ".join(noisy))
    return problems
