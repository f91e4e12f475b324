"""One fine-tune on two processes: torchrun, DistributedDataParallel over gloo on this CPU.

The 2-process run must take the single process's steps per epoch at the same global batch, end
with identical weights on both ranks, register one version (rank 0), resume after a kill to the
same weights, and land within noise of the single-process accuracy on real Fashion-MNIST.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from plugins.dataset_files import DEBIAN_FASHION_MNIST
from registry.store import ModelStore

pytestmark = pytest.mark.slow

REAL = (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file() or os.environ.get(
    "HARNESS_REQUIRE_REAL_DATA") == "1"
ARGS = ("cifar_convnet_xs", "--task", "fashion-mnist" if REAL else "synthetic", "--epochs", "2",
        "--batch-size", "64", "--train-limit", "2000", "--test-limit", "1000", "--format", "json")


def _run(env: dict[str, str], *args: str, procs: int = 0) -> subprocess.CompletedProcess:
    harness = [sys.executable, "-m", "harness", "finetune", *args]
    if procs:
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        harness = [torchrun, "--standalone", f"--nproc-per-node={procs}", "-m", "harness", "finetune", *args]
    env = {**env, "OMP_NUM_THREADS": "1"}
    return subprocess.run(harness, env=env, capture_output=True, text=True, timeout=600)


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _state(pid: int) -> str:
    try:
        return "zombie" if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z" else "alive"
    except OSError:
        return "zombie"


def test_two_processes_train_like_one_with_the_global_batch(subprocess_env, tmp_path):
    single = _run(subprocess_env, *ARGS, "--name", "one")
    assert single.returncode == 0, single.stderr[-2000:]
    double = _run(subprocess_env, *ARGS, "--name", "two", procs=2)
    assert double.returncode == 0, double.stderr[-3000:]
    assert double.stdout.count('"model"') == 1, double.stdout  # rank 0 alone reports
    one, two = json.loads(single.stdout), json.loads(double.stdout)
    with ModelStore() as store:
        a, b = store.get(one["model"]), store.get(two["model"])
        assert [v.ref for v in store.list("two")] == ["two@1"]  # one version, not one per rank
    assert b.recipe["distributed"] == {"world_size": 2, "backend": "gloo", "weights_identical": True}
    assert [h["steps"] for h in a.metrics["history"]] == [h["steps"] for h in b.metrics["history"]]
    # validation is drawn from the whole split first, so all 2,000 train images train; drop_last
    assert b.metrics["history"][0]["steps"] == 2000 // 64
    assert abs(one["accuracy"] - two["accuracy"]) < 0.06, (one, two)


def test_two_process_bad_batch_is_refused_before_training(subprocess_env):
    odd = _run(subprocess_env, "cifar_convnet_xs", "--task", "synthetic", "--batch-size", "63", procs=2)
    # torchrun exits 1 whenever a rank fails, and prints its own summary (with each rank's exit code)
    assert odd.returncode == 1 and "must divide evenly over 2 processes" in odd.stderr
    assert "exitcode  : 2" in odd.stderr and "harness/train" not in odd.stderr  # our user error, no traceback


def test_two_process_run_killed_then_resumed_ends_with_the_same_weights(subprocess_env, tmp_path):
    from safetensors.torch import load_file

    args = ("cifar_convnet_xs", "--task", "synthetic", "--epochs", "3", "--batch-size", "32", "--format", "json")
    straight = _run(subprocess_env, *args, "--name", "straight", procs=2)
    assert straight.returncode == 0, straight.stderr[-2000:]
    runs = Path(os.environ["HARNESS_HOME"]) / "runs"
    assert not list(runs.glob("*/checkpoint.pt"))  # rank 0 cleaned its run folder after registering
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    proc = subprocess.Popen([torchrun, "--standalone", "--nproc-per-node=2", "-m", "harness", "finetune", *args,
                             "--name", "resumed"], env={**subprocess_env, "OMP_NUM_THREADS": "1"},
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/checkpoint.pt")):
        time.sleep(0.05)
    assert list(runs.glob("*/checkpoint.pt")), "no checkpoint appeared"
    ranks = _children(proc.pid)  # torchrun starts each rank in a session of its own
    assert len(ranks) == 2
    for pid in [proc.pid, *ranks]:  # torchrun and both ranks, mid-run
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in ranks):
        time.sleep(0.05)
    with ModelStore() as store:
        assert [v.name for v in store.list()] == ["straight"] and store.check() == []
    again = _run(subprocess_env, *args, "--name", "resumed", "--resume", procs=2)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming run" in again.stderr
    with ModelStore() as store:
        a = load_file(str(store.get("straight").artifacts["weights"].path))
        b = load_file(str(store.get("resumed").artifacts["weights"].path))
        assert store.get("straight").metrics["test"] == store.get("resumed").metrics["test"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
