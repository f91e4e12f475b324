"""Robustness and calibration end to end, with real training, ONNX export and ONNX Runtime: the
suite degrades a trained model more at higher severity and is recorded with the version; the
temperature fitted on validation is stored and travels in the ONNX metadata; select shows the
columns (or says how to get them); the gate refuses on the drop; report and card show them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from faultlib import assert_clean_failure

from registry import keys
from registry.store import ModelStore

DEGRADING = ("gaussian_blur", "contrast", "pixelate")
"""Corruptions that destroy the synthetic task's stripes (its images carry noise already, so noise
alone barely hurts a model trained on them)."""


def test_severity_degrades_a_trained_model_and_the_result_is_recorded(trained, run_cli):
    result = run_cli("robustness", trained, "--samples", "100", "--corruptions", ",".join(DEGRADING),
                     "--format", "json")
    assert result.exit_code == 0, result.output[-2000:]
    report = json.loads(result.stdout)
    by_severity = np.array([[row[f"s{s}"] for s in range(1, 6)] for row in report["table"]])
    assert by_severity[:, 4].mean() < by_severity[:, 0].mean()  # severity 5 hurts more than 1
    assert report["corruption_accuracy"] < report["clean_accuracy"]
    low, high = report["drop_ci95"]
    assert low <= report["relative_drop"] <= high and report["relative_drop"] > 0
    assert report["images"]["n"] == 100 and report["onnx"] in ("registry artifact", "new export")
    with ModelStore() as store:
        stored = store.get(trained).metrics[keys.ROBUSTNESS]
    assert stored["scores"] == report["scores"]
    again = json.loads(run_cli("robustness", trained, "--samples", "100", "--corruptions", "gaussian_blur",
                               "--format", "json", "--no-record").stdout)
    assert again["scores"] == report["scores"][:5]  # seeded: the same images, the same result
    assert_clean_failure(run_cli("robustness", trained, "--corruptions", "fog"), 2, "unknown corruption 'fog'")


def test_the_temperature_is_stored_and_written_into_the_onnx_metadata(trained, run_cli, tmp_path):
    from harness.onnx.runtime import read_onnx_metadata

    exported = json.loads(run_cli("export", trained, "--out", str(tmp_path), "--format", "json").stdout)
    meta = read_onnx_metadata(exported["path"])
    with ModelStore() as store:
        calibration = store.get(trained).metrics[keys.CALIBRATION]
    assert meta["temperature"] == calibration["temperature"] > 0
    assert meta["temperature_fitted_on"].startswith("val: ") and calibration["fitted_on"].startswith("val: ")
    assert calibration["reported_on"].startswith("test: ")
    assert calibration["nll_after"] <= calibration["nll_before"]  # T minimises NLL on val; test should follow
    parity = run_cli("check-onnx", trained, "--samples", "32")  # the file still outputs PyTorch's logits
    assert parity.exit_code == 0, parity.output[-2000:]


@pytest.mark.slow
def test_gate_refuses_on_robustness_drop_and_the_card_shows_it(trained, run_cli, tmp_path):
    refused = run_cli("gate", trained, "--against", "synthetic:production", "--max-robustness-drop", "0.001",
                      "--max-ece", "1", "--format", "json")
    assert refused.exit_code == 1, refused.output[-2000:]
    verdict = json.loads(refused.stdout)
    conditions = {c["condition"]: c for c in verdict["conditions"]}
    robust = conditions["robustness"]
    assert not robust["passed"] and robust["limit"] == 0.001
    assert robust["value"]["relative_drop"] > 0.001 and set(robust["value"]["per_corruption"]) >= set(DEGRADING)
    assert "--max-robustness-drop" in robust["reason"] and "robustness" in verdict["summary"]
    assert conditions["calibration"]["passed"] and "ece_scaled" in conditions["calibration"]["value"]
    passed = run_cli("gate", trained, "--against", "synthetic:production", "--max-robustness-drop", "1",
                     "--apply", "--format", "json")  # measured once, read back from the store now
    assert passed.exit_code == 0 and json.loads(passed.stdout)["applied"]
    card = run_cli("card", "synthetic:production", "--no-data-check").stdout
    assert "relative drop" in card and "| gaussian_blur |" in card and "`temperature`" in card
    assert_clean_failure(run_cli("gate", trained, "--against", "synthetic:production", "--max-ece", "2"), 2,
                         "--max-ece")


@pytest.mark.slow
def test_select_columns_off_and_on_and_the_report_table(run_cli, tmp_path):
    args = ("select", "--task", "synthetic", "--candidates", "cifar_convnet_xs", "--epochs", "1", "--train-limit",
            "200", "--test-limit", "100", "--quiet", "--format", "json")
    result = run_cli(*args, "--no-robustness")
    assert result.exit_code == 0, result.output[-2000:]
    off = json.loads(result.stdout)
    assert off["rows"][0]["status"] == "ok", off["rows"][0]
    row = off["rows"][0]
    assert {"corruption_acc", "robust_drop", "ece_scaled", "temperature"} <= set(row)
    assert row["corruption_acc"] is None and "--robustness" in off["robustness"]["note"]
    assert row["temperature"] > 0 and row["ece_scaled"] is not None and row["ece"] is not None
    on = json.loads(run_cli(*args, "--robustness").stdout)
    row = on["rows"][0]
    assert row["status"] == "cached" and on["robustness"] == {"mode": "on", "note": None}
    assert 0 <= row["corruption_acc"] <= 1 and row["robust_drop"] is not None
    table = run_cli("leaderboard", "--task", "synthetic").stdout
    assert "corrupted" in table and "ECE (T)" in table
    out = tmp_path / "report.html"
    assert run_cli("report", "--task", "synthetic", "--out", str(out), "--no-data-check").exit_code == 0
    html = out.read_text()
    assert 'class="robustness"' in html and "corruption \\ severity" in html and 'class="reliability"' in html
