"""Training speed with and without OpenMP's spinning threads, on a quiet machine and under load.

PyTorch's CPU kernels run on an OpenMP pool whose idle threads spin (busy-wait) between parallel
regions by default. On a machine whose cores are all busy with other work, a spinning thread burns
the time slice another thread of the same step needs, and each step waits for its slowest thread:
the issue measured pretraining at 28 img/s with 2 threads and 325 img/s with 1 on a busy 2-core
box. ``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep at once; ``GOMP_SPINCOUNT=10000`` lets
them spin briefly first, which keeps the quiet speed; harness sets the latter (unless the
environment sets either) before torch is first imported.

Measured here (2 cores, 60 steps x 2-3 rounds, 2026-12-06): quiet: default 1,419-1,536 img/s,
passive 1,261-1,419 (0.89-0.92x), spin 10,000 1,578; beside 2 spinning processes: default
277-302, passive 553-569 (2.0x), spin 10,000 588.

Each configuration runs in its own process (the policy is read when torch loads): a small
CIFAR-style net (``cifar_convnet_xs``) trains ``--steps`` steps of 64 random 32x32 images with
``--threads`` threads, first alone, then beside ``--load`` processes that spin on a core each.
Rounds are interleaved; medians and ratios are from this run.

    python benchmarks/threads_contention.py [--steps 60] [--rounds 3] [--threads 2] [--load 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import sys, time
import torch  # first: OpenMP reads its settings now, before harness would set its default
from harness.models.build import build_model
from harness.plugins import get_plugins
torch.set_num_threads(int(sys.argv[2]))
model = build_model(get_plugins().catalogue, "cifar_convnet_xs", 10)
x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
def step():
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(5):
    step()
started = time.perf_counter()
for _ in range(int(sys.argv[1])):
    step()
print(64 * int(sys.argv[1]) / (time.perf_counter() - started))
"""


def _spin() -> None:
    while True:
        pass


POLICIES = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "spin 10,000": {"GOMP_SPINCOUNT": "10000"}}
"""OpenMP's default, sleeping at once, and harness's default (a short spin, then sleep)."""


def _speed(policy: str, steps: int, threads: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps), str(threads)], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--load", type=int, default=2, help="spinning processes for the loaded case")
    args = parser.parse_args()
    results: dict[tuple[str, str], list[float]] = {}
    for load in ("quiet", "loaded"):
        spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.load if load == "loaded"
                                                                                      else 0)]
        for p in spinners:
            p.start()
        try:
            for _ in range(args.rounds):
                for policy in POLICIES:
                    speed = _speed(policy, args.steps, args.threads)
                    results.setdefault((load, policy), []).append(speed)
        finally:
            for p in spinners:
                p.terminate()
        time.sleep(1)
    print(f"cifar_convnet_xs, batch 64 at 32px, {args.threads} threads, {args.steps} steps x {args.rounds} rounds "
          f"(median img/s; loaded = beside {args.load} spinning processes)")
    for load in ("quiet", "loaded"):
        default = statistics.median(results[(load, "default")])
        cells = "   ".join(f"{p} {statistics.median(results[(load, p)]):6.0f} "
                           f"({statistics.median(results[(load, p)]) / default:.2f}x)" for p in POLICIES)
        print(f"  {load:6}: {cells}")


if __name__ == "__main__":
    main()
