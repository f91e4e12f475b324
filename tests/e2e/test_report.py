"""``harness report`` and ``select --report``: one self-contained HTML file, opened in real headless
Chromium (Debian's chromium + chromium-driver, driven by Selenium): the leaderboard's rows, the
images decoded, no console error, nothing fetched."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from harness.report import render, reproduce_command
from harness.report.collect import CandidateDetail, ReportData
from harness.select.row import LeaderboardRow, failed_row

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _browser():
    """Headless Chromium with the console log kept (skips, saying why, when the browser is absent)."""
    why = "needs selenium and Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    if webdriver is None or not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("HARNESS_REQUIRE_BROWSER"):  # CI installs them: never skip there
            pytest.fail(why)
        pytest.skip(why)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def _look(driver, path: Path) -> dict:
    from selenium.webdriver.common.by import By

    driver.get(path.resolve().as_uri())
    images = driver.find_elements(By.TAG_NAME, "img")
    rows = driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
    decoded = "return arguments[0].complete && arguments[0].naturalWidth"
    return {
        "rows": [r.get_attribute("data-candidate") for r in rows],
        "images": [driver.execute_script(decoded, i) for i in images],
        "sections": len(driver.find_elements(By.CSS_SELECTOR, "section.candidate")),
        "confusion_cells": len(driver.find_elements(By.CSS_SELECTOR, "table.cm td")),
        "errors": [e for e in driver.get_log("browser") if e["level"] == "SEVERE"],
        "verdict": driver.find_element(By.ID, "verdict").text,
        "curves": len(driver.find_elements(By.CSS_SELECTOR, "img.curves")),
    }


@pytest.mark.slow
def test_select_report_opens_in_chromium_with_rows_images_and_no_errors(run_cli, tmp_path):
    out = tmp_path / "report.html"
    # one of the two is timm's (when installed): fine-tuned on generated data, exported, ONNX parity checked
    other = "timm/test_resnet" if importlib.util.find_spec("timm") else "cifar_resnet8"
    result = run_cli("select", "--task", "synthetic", "--candidates", f"cifar_convnet_xs,{other}",
                     "--epochs", "1", "--report", str(out), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["candidate"]: r for r in json.loads(result.stdout)["rows"]}
    names = sorted(rows)
    assert f"wrote {out}: 2 candidates, chosen " in result.stderr  # as harness report says it
    for row in rows.values():
        assert row["status"] == "ok" and row["exporter"] == "dynamo" and row["parity"] == "passed", row
        assert row["accuracy"] > 0.2  # 10 generated classes: above chance after one epoch
    html = out.read_text()
    # self-contained: nothing is loaded from anywhere, and the policy forbids trying
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)
    assert "default-src 'none'" in html
    driver = _browser()
    try:
        seen = _look(driver, out)
        assert sorted(seen["rows"]) == names
        assert all(w and w > 100 for w in seen["images"])
        assert seen["curves"] == 2 * 2  # loss and accuracy, each on its own axes, per candidate
        assert seen["sections"] == 2 and seen["confusion_cells"] == 2 * 10 * 10
        assert seen["errors"] == []
        assert "Chosen on validation:" in seen["verdict"] and "on test" in seen["verdict"]

        # the check can fail: a copy that fetches an image is blocked and logged
        tampered = tmp_path / "tampered.html"
        tampered.write_text(html.replace("</body>", '<img src="https://example.invalid/x.png"></body>'))
        assert _look(driver, tampered)["errors"], "a blocked fetch must show as a console error"
    finally:
        driver.quit()

    again = run_cli("report", "--task", "synthetic", "--out", str(tmp_path / "again.html"), "--no-data-check")
    assert again.exit_code == 0 and "2 candidates" in again.stdout
    assert "data check not run" in (tmp_path / "again.html").read_text()


@pytest.mark.slow
def test_select_report_holds_only_this_selections_rows(run_cli, tmp_path):
    """An earlier selection of the task left a row for a candidate this one did not run: ``select
    --report`` reports this selection (as its table shows it); ``harness report`` still shows the task."""
    quick = ("--task", "synthetic", "--epochs", "1", "--train-limit", "128", "--format", "json")
    assert run_cli("select", "--candidates", "cifar_convnet_xs", *quick).exit_code == 0
    out = tmp_path / "report.html"
    result = run_cli("select", "--candidates", "cifar_resnet8", *quick, "--report", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 1 candidates, chosen " in result.stderr
    html = out.read_text()
    assert 'data-candidate="cifar_resnet8"' in html and 'data-candidate="cifar_convnet_xs"' not in html
    whole = run_cli("report", "--task", "synthetic", "--out", str(tmp_path / "task.html"), "--no-data-check")
    assert whole.exit_code == 0 and "2 candidates" in whole.stdout


def test_report_refuses_before_work(run_cli, tmp_path):
    afile = tmp_path / "a-file"  # a folder that cannot be created: a file is in its place
    afile.write_text("x")
    missing = run_cli("report", "--task", "synthetic", "--out", str(afile / "no" / "r.html"))
    assert missing.exit_code == 2 and f"{str(afile)!r} is a file, not a folder" in missing.output
    empty = run_cli("report", "--task", "synthetic", "--out", str(tmp_path / "r.html"))
    assert empty.exit_code == 2 and "no select results for task 'synthetic'" in empty.output
    assert not (tmp_path / "r.html").exists()
    later = run_cli("report", "--task", "synthetic", "--out", str(tmp_path / "new" / "r.html"))
    assert "no select results" in later.output  # a folder that can be created is accepted (the write makes it)
    folder = run_cli("select", "--task", "synthetic", "--report", str(tmp_path), "--epochs", "1")
    assert folder.exit_code == 2 and "--report" in folder.output and "is a directory" in folder.output
    nowhere = run_cli("select", "--task", "synthetic", "--report", str(afile / "r.html"), "--epochs", "1")
    assert nowhere.exit_code == 2 and f"--report {str(afile / 'r.html')!r} cannot be written" in nowhere.output
    assert "registered" not in nowhere.output  # refused before any training


def _data(rows, details, names=("cat", "dog")) -> ReportData:
    return ReportData("pets", "pets", "accuracy", True, rows, details, names, None, "not run",
                      {"trained with": {"torch": "2.9"}}, "now")


def test_render_escapes_what_users_named_and_survives_missing_parts():
    hostile = '<img src=x onerror="alert(1)">'
    ok = LeaderboardRow("cifar_resnet8", "accuracy", model="pets@1", metrics={"accuracy": 0.5}, ort_b1_ms=0.2)
    failed = failed_row("resnet18", "accuracy", "train", f"diverged {hostile}")
    detail = CandidateDetail(ok, None, confusion=[[1, 0], [0, 1]])
    html = render(_data([ok, failed], [detail, CandidateDetail(failed, None)], names=(hostile, "dog")))
    assert hostile not in html and "&lt;img src=x onerror=" in html
    assert html.count('<tr class="row') == 2 and "No candidate met every constraint" in html
    assert "data check not run" in html


def test_busy_machine_warning_is_seen_at_1400px_and_curves_have_their_own_axes(tmp_path):
    """A wide leaderboard (every column filled) pushes the note column off-screen: the warning
    about untrustworthy latencies must be above it. Loss and accuracy get a chart each, ticked on
    whole epochs."""
    import base64

    busy = "machine busy: other processes used 1.9 of 2 cores"
    rows = [LeaderboardRow(name, "accuracy", model=f"pets@{i}", metrics={"accuracy": 0.5, "macro_f1": 0.5},
                           val=0.5, ort_b1_ms=0.2, ort_b32_img_s=1000.0, params_m=11.2, gflops=1.8, size_mb=44.7,
                           parity="passed", exporter="dynamo", pareto=True, rung="1/3 (2 ep)", train_s=12.0,
                           timing=busy, chosen=i == 1)
            for i, name in enumerate(("resnet18.tv_in1k_with_a_long_name", "cifar_resnet8"), 1)]
    history = [{"epoch": e, "train_loss": 2.3 / e, "train_accuracy": 0.3 * e, "val_metric": 0.25 * e}
               for e in (1, 2)]  # two epochs: a plain axis would tick 1, 1.5, 2
    from registry.records import ModelVersion

    version = ModelVersion(id=1, name="pets", version=1, backbone="resnet18", kind="finetune", parent_id=None,
                           parent_ref=None, task="pets", dataset="pets", num_classes=2, class_names=None, recipe={},
                           metrics={}, environment={}, seed=0, device="cpu", created_at=0.0)
    out = tmp_path / "busy.html"
    out.write_text(render(_data(rows, [CandidateDetail(r, version, history=history) for r in rows])))
    driver = _browser()
    from selenium.webdriver.common.by import By

    try:
        driver.set_window_size(1400, 900)
        driver.get(out.resolve().as_uri())
        warning = driver.find_element(By.ID, "timing-warning")
        box = driver.execute_script("const r = arguments[0].getBoundingClientRect(); "
                                    "return [r.left, r.right, window.innerWidth];", warning)
        assert warning.is_displayed() and busy in warning.text and "cifar_resnet8" in warning.text
        assert box[0] >= 0 and box[1] <= box[2] <= 1400, box  # fully inside the window, no scrolling
        curves = driver.find_elements(By.CSS_SELECTOR, "img.curves")
        assert len(curves) == 2 * 2
        assert all(driver.execute_script("return arguments[0].naturalWidth", c) > 100 for c in curves)
    finally:
        driver.quit()
    svgs = [base64.b64decode(src.split(",", 1)[1]).decode()
            for src in re.findall(r'class="curves [a-z]+" alt="[^"]*" src="([^"]+)"', out.read_text())]
    loss, scores = svgs[0], svgs[1]
    assert "train loss" in loss and "train accuracy" not in loss  # separate axes
    assert "train accuracy" in scores and "validation accuracy" in scores and "train loss" not in scores
    ticks = re.findall(r'text-anchor="middle">([^<]+)</text>', loss)
    epochs = [t for t in ticks if t not in ("epoch", "training loss")]  # less the axis labels
    assert epochs == ["1", "2"], epochs  # whole epochs, no 1.5


def test_reproduce_command_writes_every_recipe_flag():
    from registry.records import ModelVersion

    version = ModelVersion(id=1, name="pets", version=1, backbone="resnet18", kind="finetune", parent_id=None,
                           parent_ref=None, task="pets:classes=0-1", dataset="pets", num_classes=2, class_names=None,
                           recipe={"source": "resnet18.tv_in1k", "strategy": "partial", "partial_blocks": 2,
                                   "epochs": 3, "lr": 0.01, "seed": 4, "patience": None},
                           metrics={}, environment={}, seed=4, device="cpu", created_at=0.0)
    assert reproduce_command(version) == ("harness finetune resnet18.tv_in1k --task pets:classes=0-1 --strategy "
                                          "partial --epochs 3 --lr 0.01 --seed 4 --blocks 2")


@pytest.mark.slow
def test_a_views_command_is_spelled_as_the_command_line_takes_it(run_cli, tmp_path):
    task = "synthetic:classes=0-4"
    assert run_cli("select", "--task", task, "--candidates", "cifar_convnet_xs", "--epochs", "1",
                   "--train-limit", "200").exit_code == 0
    out = tmp_path / "view.html"
    assert run_cli("report", "--task", task, "--out", str(out), "--no-data-check").exit_code == 0
    html = out.read_text()
    assert "harness finetune cifar_convnet_xs --task synthetic:classes=0-4 " in html  # not synthetic--classes-0-4
