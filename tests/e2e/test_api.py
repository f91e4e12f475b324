"""The Python API: the example notebook-style script runs from start to end, and ``harness.select``
/ ``harness.evaluate`` are callable while staying the subpackages they also are."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT


def test_api_names_are_callable_and_subpackages_still_import():
    import harness
    import harness.select.run  # the subpackage, imported first
    from harness.api import LoadedModel

    assert callable(harness.select) and callable(harness.evaluate) and callable(harness.load_model)
    assert harness.select.run.select is not None and LoadedModel.__name__ == "LoadedModel"
    assert set(harness.__all__) >= {"select", "finetune", "evaluate", "export", "check_onnx", "bench", "leaderboard",
                                    "load_model", "load_onnx", "report"}


@pytest.mark.slow
def test_example_notebook_script_runs(tmp_path, subprocess_env):
    env = {**subprocess_env, "HARNESS_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "parity passed: True" in done.stdout and "onnx logits: (2, 10)" in done.stdout
    assert (tmp_path / "exports").is_dir()
    assert "report: 2 rows, chosen" in done.stdout
    assert '<table id="leaderboard">' in (tmp_path / "report.html").read_text()
