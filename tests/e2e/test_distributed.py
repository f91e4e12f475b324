"""One fine-tune on two processes: torchrun, DistributedDataParallel over gloo on this CPU.

The 2-process run must take the single process's steps per epoch at the same global batch, end
with identical weights on both ranks, register one version (rank 0), resume, and land within noise
of the single-process accuracy on real Fashion-MNIST.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plugins.dataset_files import DEBIAN_FASHION_MNIST
from registry import ModelStore

pytestmark = pytest.mark.slow

REAL = (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file() or os.environ.get(
    "HARNESS_REQUIRE_REAL_DATA") == "1"
ARGS = ("cifar_convnet_xs", "--task", "fashion-mnist" if REAL else "synthetic", "--epochs", "2",
        "--batch-size", "64", "--train-limit", "3000", "--test-limit", "1000", "--format", "json")


def _run(env: dict[str, str], *args: str, procs: int = 0) -> subprocess.CompletedProcess:
    harness = [sys.executable, "-m", "harness", "finetune", *args]
    if procs:
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        harness = [torchrun, "--standalone", f"--nproc-per-node={procs}", "-m", "harness", "finetune", *args]
    env = {**env, "OMP_NUM_THREADS": "1"}
    return subprocess.run(harness, env=env, capture_output=True, text=True, timeout=600)


def test_two_processes_train_like_one_with_the_global_batch(subprocess_env, tmp_path):
    single = _run(subprocess_env, *ARGS, "--name", "one")
    assert single.returncode == 0, single.stderr[-2000:]
    double = _run(subprocess_env, *ARGS, "--name", "two", procs=2)
    assert double.returncode == 0, double.stderr[-3000:]
    assert len(double.stdout.strip().splitlines()) == 1, double.stdout  # rank 0 alone reports
    one, two = json.loads(single.stdout), json.loads(double.stdout)
    with ModelStore(Path(os.environ["HARNESS_HOME"])) as store:
        a, b = store.get(one["model"]), store.get(two["model"])
        assert [v.ref for v in store.list("two")] == ["two@1"]  # one version, not one per rank
    assert b.recipe["distributed"] == {"world_size": 2, "backend": "gloo", "weights_identical": True}
    assert [h["steps"] for h in a.metrics["history"]] == [h["steps"] for h in b.metrics["history"]]
    assert b.metrics["history"][0]["steps"] == (int(3000 * 0.9) // 64)  # 10% validation, drop_last
    assert abs(one["accuracy"] - two["accuracy"]) < 0.06, (one, two)


def test_two_process_bad_batch_is_refused_before_training_and_resume_works(subprocess_env, tmp_path):
    odd = _run(subprocess_env, "cifar_convnet_xs", "--task", "synthetic", "--batch-size", "63", procs=2)
    assert odd.returncode == 2 and "must divide evenly over 2 processes" in odd.stderr
    assert "Traceback" not in odd.stderr
    args = ("cifar_convnet_xs", "--task", "synthetic", "--epochs", "2", "--batch-size", "32", "--train-limit",
            "320", "--format", "json")
    first = _run(subprocess_env, *args, "--name", "r", procs=2)
    assert first.returncode == 0, first.stderr[-2000:]
    runs = Path(os.environ["HARNESS_HOME"]) / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # rank 0 cleaned its run folder after registering
    # an interrupted run leaves a checkpoint; --resume on two processes continues from it
    again = _run(subprocess_env, *args, "--name", "r", "--resume", procs=2)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["model"] == "r@2"
    shutil.rmtree(tmp_path, ignore_errors=True)
