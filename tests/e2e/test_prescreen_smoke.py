"""``benchmarks/prescreen.py --smoke``: the whole benchmark on a tiny scale, on real data (a zoo
pretrained on Fashion-MNIST classes 0-4, targets from classes 5-9 and scikit-learn's digits),
every prescreen and free order scored per target and pooled, with p-values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.select.config import PRESCREENS
from plugins.dataset_files import DEBIAN_FASHION_MNIST

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "prescreen.py"


needs_fashion = pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file()
    and os.environ.get("HARNESS_REQUIRE_REAL_DATA") != "1",
    reason="apt-get install dataset-fashion-mnist",
)


@pytest.mark.slow
@needs_fashion
def test_smoke_run_scores_every_prescreen_per_target_and_pooled(tmp_path, subprocess_env):
    pytest.importorskip("sklearn")
    env = {**subprocess_env, "HARNESS_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--format", "json"], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["mode"] == "smoke" and len(report["candidates"]) == 6
    targets = [t["target"] for t in report["truth"]]
    assert len(targets) == 2 and any(t.startswith("digits") for t in targets)
    for t in report["truth"]:
        assert t["candidates"] == 6 and t["seeds"] == 2 and 0 < t["best_accuracy"] <= 1
    expected = {*PRESCREENS, "sfda (standardised)", "parameter count", "pretraining score", "random order"}
    for target in targets:
        rows = {r["order"]: r for r in report["per_target"] if r["target"] == target}
        assert set(rows) == expected
        assert rows["pretraining score"]["n"] == 4  # the autoencoders have no source accuracy
        for name in PRESCREENS:
            assert rows[name]["n"] == 6 and rows[name]["cost_s"] > 0
            assert rows[name]["weighted_p"] is None or 0 < rows[name]["weighted_p"] <= 1
    pooled = {p["order"]: p for p in report["pooled"]}
    assert set(pooled) == expected and pooled["ncti"]["targets"] == 2
    assert all(0 < p["weighted_p"] <= 1 for p in pooled.values() if p["weighted_p"] is not None)
    assert {d["first"] for d in report["vs_best_free"]} <= {*PRESCREENS, "sfda (standardised)"}
