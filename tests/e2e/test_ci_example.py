"""examples/ci/: the shell recipe a CI job runs (train -> gate -> promote or refuse), end to end in
a subprocess as CI runs it, and the GitHub Actions workflow that calls it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "ci" / "promote.sh"


def _promote(tmp_path: Path, env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**env, **extra})


@pytest.mark.slow
def test_promote_script_promotes_then_refuses_a_worse_candidate(tmp_path, subprocess_env):
    env = {**subprocess_env, "HARNESS_HOME": str(tmp_path / "store"), "TASK": "synthetic",
           "BACKBONE": "cifar_convnet_xs", "HARNESS": str(Path(sys.executable).with_name("harness"))}
    first = _promote(tmp_path, env, TRAIN_ARGS="--epochs 1 --train-limit 512")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "promoted synthetic@1 to synthetic:production" in first.stderr
    assert json.loads((tmp_path / "verdict.json").read_text())["applied"] is True

    again = _promote(tmp_path, env, "synthetic@1")
    assert again.returncode == 2 and "already is synthetic:production" in again.stderr
    assert "Traceback" not in again.stderr and json.loads((tmp_path / "verdict.json").read_text())["applied"]
    bad = _promote(tmp_path, env, TRAIN_ARGS="--epochs 0")  # finetune's usage error: its exit code, no traceback
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--epochs" in bad.stderr

    worse = _promote(tmp_path, env, TRAIN_ARGS="--epochs 1 --lr 0.00001 --train-limit 64 --batch-size 32")
    assert worse.returncode == 1, worse.stderr[-2000:]
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert verdict["verdict"] == "fail" and verdict["candidate"] == "synthetic@2" and not verdict["applied"]
    history = subprocess.run([env["HARNESS"], "registry", "history", "synthetic:production", "--format", "json"],
                             capture_output=True, text=True, env=env, check=True)
    assert [m["to"] for m in json.loads(history.stdout)] == ["synthetic@1"]


def test_the_workflow_runs_the_script_with_a_persistent_store():
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())
    steps = workflow["jobs"]["gate"]["steps"]
    assert any("examples/ci/promote.sh" in step.get("run", "") for step in steps)
    assert workflow["jobs"]["gate"]["env"]["HARNESS_HOME"] and os.access(SCRIPT, os.X_OK)
