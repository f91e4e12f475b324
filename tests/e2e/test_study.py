"""``harness study transfer``: every start trained at equal steps and to convergence (recipe chosen on
validation) on the task's view, gains paired over seeds with intervals, a verdict per budget, cached
by fingerprint (a changed recipe retrains only what it changes), plotted."""

from __future__ import annotations

import json

import pytest
from faultlib import assert_clean_failure

SPEC = ('name = "s"\nepochs = 1\nbatch_size = 32\ntrain_limit = 128\n[[groups]]\n'
        'backbones = ["cifar_convnet_xs"]\nmethod = "supervised"\nsource = "synthetic:classes=0-4"\n')


ARGS = ("study", "transfer", "--task", "synthetic:classes=5-9", "--starts", "zoo:s,cifar_convnet_xs",
        "--labels", "4", "--seeds", "2", "--strategies", "full,linear", "--epochs", "1", "--val-per-class", "10",
        "--lr-mults", "1", "--max-epochs", "30", "--patience", "2")


@pytest.mark.slow
def test_study_two_arms_paired_gains_verdict_cache_and_plot(own, tmp_path):
    from registry import keys
    from registry.store import ModelStore

    spec = tmp_path / "zoo.toml"
    spec.write_text(SPEC)
    assert own("zoo", "build", "--spec", str(spec), "--quiet").exit_code == 0
    plot = tmp_path / "curves.png"
    first = own(*ARGS, "--format", "json", "--plot", str(plot))
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    runs = report["runs"]
    # equal steps: scratch full + zoo full, linear; converged: scratch full x1 + zoo full x1, linear; 2 seeds
    assert len(runs) == 12 and not any(r["cached"] for r in runs)
    assert not any(r["start"] == "cifar_convnet_xs" and r["strategy"] == "linear" for r in runs)
    table = {(t["arm"], t["start"].split("-")[0], t["strategy"]): t for t in report["table"]}
    scratch, zoo = table[("equal", "cifar_convnet_xs", "full")], table[("equal", "zoo", "full")]
    assert scratch["gain"] is None and zoo["baseline"] == "cifar_convnet_xs"
    assert zoo["gain"]["n_seeds"] == 2 and zoo["gain"]["low"] <= zoo["gain"]["mean"] <= zoo["gain"]["high"]
    assert zoo["gain"]["mean"] == pytest.approx(zoo["mean"] - scratch["mean"], abs=2e-3)
    chosen = table[("converged", "zoo", "chosen")]
    assert set(chosen["recipes"]) <= {"full x1", "linear"} and sum(chosen["recipes"].values()) == 2
    assert chosen["gain"]["method"] == "paired t over seeds"
    converged = [r for r in runs if r["arm"] == "converged"]
    assert all(r["max_epochs"] == 30 and r["patience"] == 2 and r["epochs"] <= 30 for r in converged)
    assert any(r["epochs"] < 30 for r in converged)  # early stopping ended a run before its cap
    with ModelStore() as store:
        assert all(len(store.get(r["model"]).metrics[keys.HISTORY]) == r["epochs"] for r in converged)
    (verdict,) = report["verdicts"]
    assert verdict["labels_per_class"] == 4 and "n=2 seeds" in verdict["text"]
    assert verdict["text"].split(":")[0] in ("pretraining helps at 4 labels/class", "no difference at 4 labels/class",
                                             "pretraining hurts here at 4 labels/class")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = json.loads(own(*ARGS, "--format", "json").stdout)
    assert all(r["cached"] for r in again["runs"]) and [r["model"] for r in again["runs"]] == [r["model"] for r in runs]
    at = ARGS.index("--lr-mults") + 1  # a changed recipe: only the runs it changes are trained again
    changed = json.loads(own(*ARGS[:at], "0.5", *ARGS[at + 1:], "--format", "json").stdout)["runs"]
    fresh = sorted((r["start"].split("-")[0], r["recipe"]) for r in changed if not r["cached"])
    assert fresh == [("cifar_convnet_xs", "full x0.5")] * 2 + [("zoo", "full x0.5")] * 2


@pytest.mark.parametrize("extra,needle", [
    (("--labels", "0"), "--labels"),
    (("--labels", "ten"), "--labels"),
    (("--strategies", "fancy"), "fancy"),
    (("--lr-mults", "0,1"), "--lr-mults"),
    (("--labels", "4", "--val-per-class", "500"), "--val-per-class"),
    (("--starts", "nonet"), "nonet"),
])
def test_bad_study_options_are_refused_before_training(own, extra, needle):
    args = ["study", "transfer", "--task", "synthetic", "--starts", "cifar_convnet_xs"]
    for i in range(0, len(extra), 2):
        if extra[i] in args:
            args[args.index(extra[i]) + 1] = extra[i + 1]
        else:
            args += list(extra[i:i + 2])
    assert_clean_failure(own(*args), 2, needle)
