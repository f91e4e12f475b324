"""Start-up time of the light commands, next to a bare interpreter, in fresh processes.

    python benchmarks/startup.py [--rounds 5]

Prints the median wall time of each command over ``--rounds`` runs and its ratio to
``python -c pass`` measured in the same run. Target: ``harness --version`` in 0.3 s or less.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--version"], ["--help"], ["list", "tasks"], ["plugins"], ["registry", "list"])


def wall(cmd: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    exe = Path(sys.executable).with_name("harness")
    harness = [str(exe)] if exe.exists() else [shutil.which("harness") or "harness"]
    base = wall([sys.executable, "-c", "pass"], args.rounds)
    print(f"{'command':28s} {'median s':>9s} {'x python -c pass':>17s}")
    print(f"{'python -c pass':28s} {base:9.3f} {1.0:17.1f}")
    for words in COMMANDS:
        seconds = wall([*harness, *words], args.rounds)
        print(f"{'harness ' + ' '.join(words):28s} {seconds:9.3f} {seconds / base:17.1f}")


if __name__ == "__main__":
    main()
