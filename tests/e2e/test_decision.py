"""The decision select makes, end to end on generated data: chosen on validation, paired comparisons
read back from the stored per-image predictions, named image sets, ties and --prefer, and --then."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.evaluate.paired import SeedPair, paired_bootstrap
from harness.predictions.stored import load_predictions
from registry import keys
from registry.store import ModelStore

pytestmark = pytest.mark.slow
CANDIDATES = "cifar_convnet_xs,cifar_resnet8,cifar_convnet_s"
FAST = ["--task", "synthetic", "--candidates", CANDIDATES, "--epochs", "1", "--train-limit", "400", "--quiet"]


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def two_seeds(builtin_plugins, tmp_path_factory):
    """One selection with two seeds per candidate, in a store of its own (shared by the tests below)."""
    import os

    from click.testing import CliRunner

    from harness.cli import cli

    home = tmp_path_factory.mktemp("decision-home")
    os.environ["HARNESS_HOME"] = str(home)
    try:
        runner = CliRunner()
        result = runner.invoke(cli, ["select", *FAST, "--seeds", "2", "--format", "json"], obj=builtin_plugins,
                               catch_exceptions=False)
        yield home, _json(result)
    finally:
        os.environ.pop("HARNESS_HOME", None)


def test_the_winner_is_the_best_on_validation_and_every_row_names_its_images(two_seeds):
    _home, report = two_seeds
    assert report["chosen_on"] == "val" and report["prefer"] == "best"
    rows = [r for r in report["rows"] if r["status"] == "ok"]
    assert len(rows) == 3 and all(r["seeds"] == 2 for r in rows)
    best = max(rows, key=lambda r: r["val"])
    chosen = next(r for r in rows if r["chosen"])
    assert chosen["candidate"] == best["candidate"] or chosen["tied"]
    assert chosen["model"] == report["winner"]
    # one validation set and one test set, named, shared by every row
    assert len(report["eval_sets"]["val"]) == len(report["eval_sets"]["test"]) == 1
    assert report["eval_sets"]["val"][0].startswith("val: 100 of 1,000 train images of synthetic #")
    assert report["eval_sets"]["test"][0].startswith("test: all 300 test images of synthetic #")
    for r in rows:
        assert 0 <= r["val"] <= 1 and 0 <= r["accuracy"] <= 1 and r["val_ci95"] is not None
        if r is best:
            assert r["vs_best"] is None and r["tied"]
        else:
            assert r["vs_best_low"] <= r["vs_best"] <= r["vs_best_high"] and 0 < r["vs_best_p"] <= 1
            assert r["tied"] == (r["vs_best_low"] <= 0 <= r["vs_best_high"])
        if not r["chosen"]:
            assert r["test_vs_chosen_low"] <= r["test_vs_chosen"] <= r["test_vs_chosen_high"]


def test_paired_differences_are_read_back_from_the_stored_predictions(two_seeds):
    home, report = two_seeds
    rows = {r["candidate"]: r for r in report["rows"]}
    best = max(rows.values(), key=lambda r: r["val"])
    other = next(r for r in rows.values() if r is not best)
    with ModelStore(home) as store:
        def seeds(row):
            versions = [v for v in store.list(task="synthetic") if v.tags.get(keys.TAG_CANDIDATE) == row["candidate"]]
            assert len(versions) == 2
            return {v.seed: load_predictions(v) for v in versions}

        mine, theirs = seeds(other), seeds(best)
        version = store.get(other["model"])
        assert version.artifacts[keys.ROLE_PREDICTIONS].size > 0
    for seed in (0, 1):
        for split in ("val", "test"):
            a, b = mine[seed][split], theirs[seed][split]
            assert a.evalset == b.evalset and np.array_equal(a.labels, b.labels)
            assert a.logits.shape == (a.evalset.n, 10)
            # the stored logits give the stored score
            if split == "test":
                acc = float((a.logits.argmax(1) == a.labels).mean())
                assert acc == pytest.approx(version.metrics[keys.TEST]["accuracy"], abs=1e-6) or seed != version.seed
    pairs = [SeedPair(mine[s]["val"].labels, mine[s]["val"].logits, theirs[s]["val"].logits) for s in (0, 1)]
    again = paired_bootstrap(pairs)
    assert (again.diff, again.low, again.high) == (other["vs_best"], other["vs_best_low"], other["vs_best_high"])


def test_leaderboard_shows_the_same_comparison_and_names_the_images(two_seeds, run_cli, monkeypatch):
    home, report = two_seeds
    monkeypatch.setenv("HARNESS_HOME", str(home))
    listed = _json(run_cli("leaderboard", "--task", "synthetic", "--format", "json"))
    board = {r["candidate"]: r for r in listed["rows"]}
    for r in report["rows"]:
        assert board[r["candidate"]]["vs_best"] == r["vs_best"] and board[r["candidate"]]["val"] == r["val"]
    text = run_cli("leaderboard", "--task", "synthetic").stdout
    assert "vs best (val)" in text and "chosen on val: 100 of 1,000 train images" in text
    assert "reported on test: all 300 test images" in text
    evaluated = run_cli("evaluate", "synthetic:best", "--test-limit", "50")
    assert evaluated.exit_code == 0
    assert "scored on test: 50 of 300 test images of synthetic" in evaluated.stdout
    assert "recorded test accuracy" in evaluated.stderr and "different image set" in evaluated.stderr


def test_prefer_fastest_chooses_among_the_tied_without_training_again(two_seeds, run_cli, monkeypatch):
    home, _report = two_seeds
    monkeypatch.setenv("HARNESS_HOME", str(home))
    again = _json(run_cli("select", *FAST, "--seeds", "2", "--prefer", "fastest", "--format", "json"))
    assert {r["status"] for r in again["rows"]} == {"cached"}
    tied = [r for r in again["rows"] if r["tied"]]
    chosen = next(r for r in again["rows"] if r["chosen"])
    assert chosen in tied and chosen["ort_b1_ms"] == min(r["ort_b1_ms"] for r in tied)


def test_then_trains_the_best_again_at_a_larger_budget_and_checks_the_order(run_cli):
    result = _json(run_cli("select", *FAST, "--then", "standard", "--then-epochs", "1", "--top-k", "3",
                           "--format", "json"))
    assert result["budget"] == "standard" and result["earlier"]["budget"] == "quick"
    assert len(result["earlier"]["rows"]) == 3 and len(result["rows"]) == 3
    check = result["budget_check"]
    assert check["first"] == "quick" and check["larger"] == "standard" and len(check["candidates"]) == 3
    assert check["order"]["n"] == 3 and 0 < check["order"]["p_value"] <= 1 and check["regret_val"] >= 0
    assert check["first_winner"] == next(r["candidate"] for r in result["earlier"]["rows"] if r["chosen"])
    with ModelStore() as store:
        assert store.get("synthetic:best").ref == result["winner"]
        assert store.get(result["winner"]).recipe["budget"] == "standard"
    text = run_cli("select", *FAST, "--then", "standard", "--then-epochs", "1", "--top-k", "2")
    assert "quick budget:" in text.stdout and "standard budget, the 2 best of quick trained again" in text.stdout
    assert "a rank agreement needs 3 or more" in text.stdout and "regret of trusting the quick order" in text.stdout


@pytest.mark.parametrize("damage", ["truncate", "empty", "flip", "pickle", "short"])
def test_damaged_predictions_are_never_read_and_the_row_says_it_was_not_compared(two_seeds, run_cli, monkeypatch,
                                                                                 tmp_path, damage):
    import pickle
    import shutil

    home, report = two_seeds
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    monkeypatch.setenv("HARNESS_HOME", str(copy))
    other = next(r for r in report["rows"] if r["vs_best"] is not None)
    with ModelStore(copy) as store:  # every seed of one candidate
        paths = [v.artifacts[keys.ROLE_PREDICTIONS].path for v in store.list(task="synthetic")
                 if v.tags.get(keys.TAG_CANDIDATE) == other["candidate"]]
    assert len(paths) == 2
    for path in paths:
        data = path.read_bytes()
        path.chmod(0o644)
        if damage == "truncate":
            path.write_bytes(data[:3000])
        elif damage == "empty":
            path.write_bytes(b"")
        elif damage == "flip":
            path.write_bytes(data[:500] + bytes(b ^ 0xFF for b in data[500:520]) + data[520:])
        elif damage == "pickle":
            path.write_bytes(pickle.dumps({"val_logits": np.zeros((100, 10))}))
        else:  # a valid .npz whose arrays do not match the recorded image set
            with path.open("wb") as f:
                np.savez(f, val_logits=np.zeros((50, 10)), val_labels=np.zeros(50), val_ids=np.arange(50))
    board = run_cli("leaderboard", "--task", "synthetic", "--format", "json")
    assert board.exit_code == 0, board.output
    row = next(r for r in json.loads(board.stdout)["rows"] if r["candidate"] == other["candidate"])
    assert row["vs_best"] is None and row["tied"] is None and row["compared"] is False
    text = run_cli("leaderboard", "--task", "synthetic").stdout
    assert f"{other['candidate']}: not compared with the best" in text and "harness registry check" in text
