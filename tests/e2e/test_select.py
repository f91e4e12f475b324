"""harness select and leaderboard end to end on generated data (real training, export, parity, bench)."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from fileformats import write_cifar10
from helpers import make_plugins

import harness
from harness.context import Context
from harness.select.config import Constraints, SelectConfig
from harness.select.leaderboard import render_rows
from harness.select.row import LeaderboardRow
from harness.select.run import select
from registry import Backbone
from registry.store import ModelStore

FAST = ["--epochs", "1", "--train-limit", "400", "--quiet"]


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_select_with_prescreen_cache_leaderboard_and_plot(run_cli, tmp_path):
    plot = tmp_path / "front.png"
    first = _json(run_cli("select", "--task", "synthetic", "--candidates", "cifar_convnet_s,cifar_resnet20,resnet18",
                          "--prescreen", "logme", *FAST, "--format", "json", "--plot", str(plot)))
    rows = {r["candidate"]: r for r in first["rows"]}
    assert set(rows) == {"cifar_convnet_s", "cifar_resnet20", "resnet18"}
    for r in rows.values():
        assert r["status"] == "ok" and r["parity"] == "passed" and r["ort_b1_ms"] > 0
        assert r["eager_b32_ms"] is None  # quick measures ONNX Runtime only
        assert isinstance(r["prescreen"], float) and r["params_m"] > 0 and r["gflops"] > 0
    assert first["kendall_tau"] is None or -1 <= first["kendall_tau"] <= 1
    check = first["rank_check"]
    assert check["prescreen"]["order"] == "logme" and check["prescreen"]["n"] == 3
    assert check["prescreen"]["kendall"] == first["kendall_tau"]
    baselines = {b["order"]: b for b in check["baselines"]}
    assert baselines["parameter count"]["n"] == 3
    assert baselines["pretraining score"]["kendall"] is None  # all from scratch: no order to compare
    assert any(r.get("pareto") for r in rows.values())
    winner = first["winner"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with ModelStore() as store:
        assert store.get("synthetic:best").ref == winner
        count = len(store.list())

    again = _json(run_cli("select", "--task", "synthetic", "--candidates", "cifar_convnet_s,cifar_resnet20,resnet18",
                          *FAST, "--format", "json"))
    assert {r["status"] for r in again["rows"]} == {"cached"}
    with ModelStore() as store:
        assert len(store.list()) == count  # nothing retrained
    assert {r["model"] for r in again["rows"]} == {r["model"] for r in first["rows"]}

    listed = _json(run_cli("leaderboard", "--task", "synthetic", "--format", "json"))
    # the same object as select's: the keys both have agree
    assert {k: listed[k] for k in ("task", "primary_metric", "chosen_on", "eval_sets", "winner", "units")} == \
        {k: first[k] for k in ("task", "primary_metric", "chosen_on", "eval_sets", "winner", "units")}
    board = listed["rows"]
    assert {r["candidate"]: r["prescreen"] for r in board} == {r["candidate"]: r["prescreen"] for r in first["rows"]}
    assert {r["prescreen_method"] for r in board} == {"logme"}  # the score is named
    assert [r["candidate"] for r in board] == [r["candidate"] for r in  # ordered on validation, like the choice
                                              sorted(first["rows"], key=lambda r: -r["val"])]
    assert board[0]["chosen"] is True or any(r["chosen"] for r in board)
    text = run_cli("leaderboard", "--task", "synthetic", "--format", "csv").stdout
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 3 and {"candidate", "accuracy", "ort_b1_ms", "gflops", "parity"} <= set(parsed[0])
    latex = run_cli("leaderboard", "--task", "synthetic", "--format", "latex").output
    assert "cifar\\_convnet\\_s" in latex and "\\begin{tabular}" in latex
    compact = run_cli("leaderboard", "--task", "synthetic").stdout
    table = compact.split("\n\n")[0]  # notes under it may be longer (paths, reasons)
    assert max(len(line) for line in table.splitlines()) <= 120 and "flags: * chosen" in compact
    picked = run_cli("leaderboard", "--task", "synthetic", "--format", "csv", "--columns", "candidate,ort_b1_ms")
    assert picked.stdout.splitlines()[0] == "candidate,ort_b1_ms" and len(picked.stdout.splitlines()) == 4
    for fmt in ("github", "pipe", "html"):
        out = run_cli("leaderboard", "--task", "synthetic", "--format", fmt, "--sort", "ort_b1_ms")
        assert out.exit_code == 0 and "cifar_resnet20" in out.output
    by_latency = _json(run_cli("leaderboard", "--task", "synthetic", "--format", "json", "--sort", "ort_b1_ms"))["rows"]
    assert [r["ort_b1_ms"] for r in by_latency] == sorted(r["ort_b1_ms"] for r in by_latency)
    assert run_cli("leaderboard", "--task", "synthetic", "--plot", str(tmp_path / "b.png")).exit_code == 0


def test_html_and_latex_are_escaped():
    rows = [LeaderboardRow("<script>a&b</script>", "accuracy", model="x_y%", metrics={"accuracy": 0.5})]
    html = render_rows(rows, "html", "accuracy")
    assert "<script>" not in html and "&lt;script&gt;" in html
    latex = render_rows(rows, "latex", "accuracy")
    assert "x\\_y\\%" in latex


class Broken:
    @harness.hookimpl
    def register_backbones(self, register):
        def build(num_classes, weights):
            class Nan(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = torch.nn.Linear(3, num_classes)

                def forward(self, x):
                    return self.fc(x.mean((2, 3))) * float("nan")

            return Nan()

        register(Backbone(name="nan_net", builder=build, head="fc", input_size=32))


BROKEN = Broken()


@pytest.mark.slow
def test_failing_candidate_is_a_row_and_constraints_exclude(tmp_path):
    plugins = make_plugins([BROKEN])
    recipe = {"epochs": 1, "train_limit": 300}
    with Context(plugins, home=tmp_path / "home", quiet=True) as ctx:
        result = select(ctx, SelectConfig("synthetic", candidates=("nan_net", "cifar_convnet_s"), recipe=recipe,
                                          constraints=Constraints(max_params=100_000)))
        rows = {r.candidate: r for r in result.rows}
        assert rows["nan_net"].status == "failed" and "at step" in rows["nan_net"].reason
        assert rows["nan_net"].stage == "train"
        assert rows["cifar_convnet_s"].status == "ok"
        assert "params" in rows["cifar_convnet_s"].excluded and result.winner is None
        fine = select(ctx, SelectConfig("synthetic", candidates=("cifar_convnet_s",), recipe=recipe,
                                        constraints=Constraints(max_latency_ms=1e6)))
        assert fine.winner.candidate == "cifar_convnet_s" and fine.rows[0].status == "cached"


def test_empty_leaderboard_says_why_and_bad_sort_key_suggests(run_cli):
    empty = run_cli("leaderboard", "--task", "synthetic", "--format", "csv")
    assert empty.exit_code == 0 and empty.stdout.strip() == "candidate,model,status,accuracy"
    assert "harness select --task synthetic" in empty.stderr
    table = run_cli("leaderboard", "--task", "synthetic", "--format", "table")
    assert table.exit_code == 0 and table.stdout.startswith("candidate") and "accuracy" in table.stdout
    wide = run_cli("leaderboard", "--task", "synthetic", "--wide")
    assert wide.exit_code == 0 and "| candidate" in wide.stdout
    bad = run_cli("leaderboard", "--task", "synthetic", "--sort", "ort_b1")
    assert bad.exit_code == 2 and "did you mean 'ort_b1_ms'" in bad.output
    assert run_cli("leaderboard", "--task", "synthetic", "--sort", "ece").exit_code == 0


@pytest.mark.slow
def test_recipe_flags_reach_every_candidate_and_the_fingerprint(run_cli):
    args = ("select", "--task", "synthetic", "--candidates", "cifar_convnet_s", "--epochs", "1", "--train-limit", "300",
            "--strategy", "partial", "--batch-size", "32", "--lr", "0.02", "--test-limit", "100", "--quiet",
            "--format", "json")
    first = _json(run_cli(*args))
    with ModelStore() as store:
        recipe = store.get(first["rows"][0]["model"]).recipe
    assert (recipe["strategy"], recipe["batch_size"], recipe["lr"], recipe["test_limit"]) == ("partial", 32, 0.02, 100)
    changed = _json(run_cli(*[a if a != "0.02" else "0.03" for a in args]))
    assert changed["rows"][0]["status"] == "ok" and changed["rows"][0]["model"] != first["rows"][0]["model"]


def test_offline_fails_fast_naming_the_files(run_cli):
    result = run_cli("select", "--task", "synthetic", "--candidates", "resnet18.tv_in1k,cifar_convnet_s", "--offline")
    assert result.exit_code == 2
    assert "resnet18-f37072fd.pth" in result.output and "hub/checkpoints" in result.output


@pytest.mark.slow
def test_unavailable_weights_are_skipped_with_the_reason(run_cli):
    out = _json(run_cli("select", "--task", "synthetic", "--candidates", "mobilenet_v3_small.tv_in1k,cifar_convnet_s",
                        *FAST, "--format", "json"))
    skipped = [r for r in out["rows"] if r["status"] == "skipped"]
    assert [r["candidate"] for r in skipped] == ["mobilenet_v3_small.tv_in1k"]
    assert "mobilenet_v3_small-047dcff4.pth" in skipped[0]["place"]


@pytest.mark.slow
def test_select_cifar10_end_to_end_on_generated_files(run_cli, tmp_path):
    """The default cifar10 candidates at quick, pretrained ones from files placed in the torch hub cache."""
    from torchvision.models import mobilenet_v3_small, resnet18

    from harness.models import weights_cache_path

    write_cifar10(tmp_path / "data", n_per_batch=40)
    catalogue = make_plugins().catalogue
    for name, build in (("resnet18.tv_in1k", resnet18), ("mobilenet_v3_small.tv_in1k", mobilenet_v3_small)):
        _, tag = catalogue.backbone(name)
        path = weights_cache_path(tag)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(build().state_dict(), path)
    out = _json(run_cli("select", "--task", "cifar10", "--data-dir", str(tmp_path / "data"), "--epochs", "1",
                        "--quiet", "--format", "json"))
    rows = {r["candidate"]: r for r in out["rows"]}
    assert set(rows) == set(catalogue.tasks.get("cifar10").protocol.candidates_for("quick"))
    assert all(r["status"] == "ok" and r["parity"] == "passed" for r in rows.values()), rows
    assert all(r["ort_b1_ms"] > 0 and r["eager_b1_ms"] is None for r in rows.values())  # quick: ORT only
    with ModelStore() as store:
        best = store.get("cifar10:best")
        assert best.ref == out["winner"] and best.task == "cifar10"
        assert store.get(rows["resnet18.tv_in1k"]["model"]).parent_ref == "resnet18.tv_in1k@1"
