"""Start-up time and peak memory of the light commands, next to a bare interpreter, in fresh processes.

    python benchmarks/startup.py [--rounds 5]

Each command runs once unmeasured (it writes the torchvision and timm indexes and the bytecode
caches, as a user's first command does), then ``--rounds`` times. Prints the median wall time, its
ratio to ``python -c pass`` measured in the same run, and the largest peak RSS of the command's
process (``wait4``'s ``ru_maxrss``). Targets: ``harness --version`` in 0.3 s or less; the listing
commands (``plugins``, ``list backbones PATTERN``, ``show NAME``, which measures only when asked)
in 0.5 s and 100 MB or less, which they meet by never importing torch, torchvision or timm (asserted by
``tests/e2e/test_fast_listing.py``). The load average before and after says whether the machine was
quiet. To measure another checkout with the same script: ``PYTHONPATH=/that/checkout python
benchmarks/startup.py`` (its ``harness`` and ``plugins`` packages are then imported first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--version"], ["--help"], ["list", "tasks"], ["registry", "list"], ["plugins"],
            ["list", "backbones", "cifar*"], ["list", "backbones", "timm_*"], ["list", "backbones", "*"],
            ["show", "resnet18.tv_in1k"])
LISTING = ("plugins", "list backbones", "show")
"""Commands held to the listing targets."""
TARGET_S, TARGET_MB = 0.5, 100


def run_once(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one run of ``cmd`` in its own process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    error = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {error.strip()[-300:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports kilobytes


def measure(cmd: list[str], rounds: int) -> tuple[float, float, float]:
    """Median wall and CPU seconds, and the largest peak RSS (MB), over ``rounds`` runs after one
    unmeasured run. CPU time barely changes when other jobs share the cores; wall time does."""
    run_once(cmd)
    runs = [run_once(cmd) for _ in range(rounds)]
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
            max(r[2] for r in runs))


def verdict(words: list[str], seconds: float, mb: float) -> str:
    if not " ".join(words).startswith(LISTING):
        return ""
    return "ok" if seconds <= TARGET_S and mb <= TARGET_MB else f"over {TARGET_S} s / {TARGET_MB} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set, so every run compiles harness from source; unset it "
              "(or set PYTHONPYCACHEPREFIX) for a user's figures", file=sys.stderr)
    exe = Path(sys.executable).with_name("harness")
    harness = [str(exe)] if exe.exists() else [shutil.which("harness") or "harness"]
    load_before = os.getloadavg()[0]
    base, base_cpu, base_mb = measure([sys.executable, "-c", "pass"], args.rounds)
    print(f"{'command':42s} {'median s':>9s} {'x python':>9s} {'cpu s':>6s} {'peak MB':>8s}  target")
    print(f"{'python -c pass':42s} {base:9.3f} {1.0:9.1f} {base_cpu:6.2f} {base_mb:8.0f}")
    for words in COMMANDS:
        seconds, cpu, mb = measure([*harness, *words], args.rounds)
        label = "harness " + " ".join(f"'{w}'" if "*" in w else w for w in words)
        print(f"{label:42s} {seconds:9.3f} {seconds / base:9.1f} {cpu:6.2f} {mb:8.0f}  "
              f"{verdict(words, seconds, mb)}")
    print(f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on "
          f"{os.cpu_count()} CPUs: {'quiet' if max(load_before, os.getloadavg()[0]) < 0.5 else 'busy'}")


if __name__ == "__main__":
    main()
