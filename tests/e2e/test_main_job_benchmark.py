"""``benchmarks/main_job.py`` on a tiny scale: it runs select in a fresh store and cache, reads the
chosen row and where the seconds went from select's own JSON, and measures the machine around it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "main_job.py"


def test_main_job_benchmark_reports_the_chosen_row_stage_seconds_and_machine_speed(tmp_path):
    tiny = "--candidates cifar_convnet_xs --train-limit 200 --epochs 1"
    done = subprocess.run([sys.executable, str(SCRIPT), "--task", "synthetic", "--no-baseline", "--format", "json",
                           "--steps", "5", "--select-args", tiny], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["step_img_s_before"] > 0 and result["step_img_s_after"] > 0
    (job,) = result["jobs"].values()
    assert job["chosen"] == "cifar_convnet_xs" and 0 <= job["test"] <= 1
    assert 0 < job["train_s"] < job["wall_s"] and job["after_training_s"] > 0 and job["setup_s"] >= 0
    assert job["command"].startswith("harness select --task synthetic")
    assert not list(tmp_path.iterdir())  # the fresh store and cache were temporary
