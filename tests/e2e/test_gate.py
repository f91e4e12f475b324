"""``harness gate``: a better candidate passes and is promoted with its evidence recorded, a worse
or tied one is refused with the reason, usage errors stop before any work, and the alias's
history and rollback are recorded moves."""

from __future__ import annotations

import json
import re

import pytest
from faultlib import assert_clean_failure

from registry.store import ModelStore


@pytest.fixture
def two(trained, run_cli) -> tuple[str, str]:
    """synthetic@1 (trained one epoch) and synthetic@2, barely trained: clearly worse."""
    weak = run_cli("finetune", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "1", "--lr", "0.00001",
                   "--train-limit", "64", "--batch-size", "32", "--format", "json")
    assert weak.exit_code == 0, weak.output[-2000:]
    return trained, json.loads(weak.stdout)["model"]


def _verdict(result, code: int) -> dict:
    assert result.exit_code == code, result.output[-2000:]
    return json.loads(result.stdout)


@pytest.mark.slow
def test_first_promotion_then_a_worse_candidate_is_refused_and_rollback(two, run_cli):
    good, weak = two
    first = _verdict(run_cli("gate", good, "--against", "synthetic:production", "--apply", "--format", "json"), 0)
    assert first["verdict"] == "pass" and first["applied"] and first["reference"] is None
    assert "first promotion" in first["conditions"][0]["reason"]
    assert {c["condition"] for c in first["conditions"]} == {"quality", "parity"}

    refused = _verdict(run_cli("gate", weak, "--against", "synthetic:production", "--apply", "--format", "json"), 1)
    assert refused["verdict"] == "fail" and not refused["applied"] and refused["reference"] == good
    quality = refused["conditions"][0]
    assert not quality["passed"] and quality["value"]["high"] < 0  # worse beyond the noise
    assert refused["images"]["n"] == refused["diff"]["n_images"] > 0
    with ModelStore() as store:
        assert store.get("synthetic:production").ref == good
        assert len(store.alias_history("synthetic", "production")) == 1  # a refusal moves nothing

    # a huge non-inferiority margin passes quality; the size limit still refuses it
    small = _verdict(run_cli("gate", weak, "--against", "synthetic:production", "--min-delta", "-99",
                             "--max-size-mb", "0.0001", "--format", "json"), 1)
    assert [c["condition"] for c in small["conditions"] if not c["passed"]] == ["size"]

    moved = run_cli("gate", weak, "--against", "synthetic:production", "--min-delta", "-99", "--apply")
    assert moved.exit_code == 0 and "moved synthetic:production" in moved.stderr
    back = run_cli("registry", "rollback", "synthetic:production")
    assert back.exit_code == 0 and f"-> {good}" in back.stdout
    history = json.loads(run_cli("registry", "history", "synthetic:production", "--format", "json").stdout)
    assert [(m["from"], m["to"]) for m in history] == [(None, good), (good, weak), (weak, good)]
    assert history[1]["evidence"]["verdict"] == "pass" and "--min-delta -99" in history[1]["command"]
    assert history[2]["evidence"] == {"rollback_of": history[1]["move"]}


def test_a_promotion_never_replaces_a_holder_it_did_not_compare_against(two):
    good, weak = two
    with ModelStore() as store:
        store.set_alias(good, "production", expect="")
        with pytest.raises(Exception, match="moved meanwhile"):
            store.set_alias(weak, "production", expect=weak)
        assert store.get("synthetic:production").ref == good


@pytest.mark.parametrize(("args", "needle"), [
    (("--against", "synthetic"), "names no alias"),
    (("--against", "nosuch:production"), "no model named"),
    (("--against", "synthetic:production", "--max-latency-ms", "-1"), "--max-latency-ms"),
])
def test_usage_errors_stop_before_any_work(trained, run_cli, args, needle):
    assert_clean_failure(run_cli("gate", trained, *args), 2, needle)


def test_model_card_from_the_store(two, run_cli, tmp_path):
    good, _ = two
    assert run_cli("gate", good, "--against", "synthetic:production", "--apply").exit_code == 0
    out = tmp_path / "MODEL_CARD.md"
    result = run_cli("card", "synthetic:production", "--out", str(out), "--no-data-check")
    assert result.exit_code == 0, result.output[-2000:]
    text = out.read_text()
    assert text.startswith("---\nlibrary_name: \"harness\"") and f"# {good}" in text
    for section in ("## Model details", "## Intended use", "## Training data", "## Evaluation", "## Calibration",
                    "## Robustness", "## Deployment", "## Environment", "## How to reproduce"):
        assert section in text
    assert "| accuracy |" in text and "test images of synthetic #" in text  # scores name their image sets
    assert "Temperature scaling fitted on validation" in text and "| ECE (15 bins) |" in text
    assert "`synthetic:production` unset -> " + good in text  # the promotion, with its evidence
    assert "harness finetune cifar_convnet_s --task synthetic" in text
    assert_clean_failure(run_cli("card", "synthetic@99"), 2, "no version 99 of synthetic")


def test_card_writes_class_names_from_the_data_as_text_not_markup(trained, run_cli):
    """Class names come from users' folders and CSVs: a card rendered on a web page must not run them."""
    with ModelStore() as store:
        v = store.get(trained)
        evil = store.register("evil", backbone=v.backbone, kind="finetune", task=v.task, dataset=v.dataset,
                              files={"weights": v.artifacts["weights"].path}, num_classes=2, recipe=v.recipe,
                              class_names=("<img src=x onerror=alert(1)>", "a|b *c*"))
    result = run_cli("card", evil.ref, "--no-data-check")
    assert result.exit_code == 0, result.output[-2000:]
    assert "<img" not in result.stdout and "&lt;img src=x onerror=alert(1)&gt;" in result.stdout
    assert "a\\|b \\*c\\*" in result.stdout


def test_card_words_the_data_check_names_each_image_set_once_and_shows_a_failed_metric(trained, run_cli):
    """The data check's images per split in words (not a Python dict); test's image set once though
    'harness evaluate' stored its own beside it; a metric that failed (NaN) shown as failed, with why."""
    from registry import keys

    assert run_cli("evaluate", trained).exit_code == 0  # stores eval:synthetic's set: the same images as test
    why = "metric 'macro_f1' returned nan (not a finite number)"
    with ModelStore() as store:
        test = dict(store.get(trained).metrics[keys.TEST])
        del test["macro_f1"]  # what finetune stores when a metric returns NaN on test
        store.update_metrics(trained, {keys.TEST: test, keys.TEST_FAILED: {"macro_f1": why}})
    result = run_cli("card", trained)
    assert result.exit_code == 0, result.output[-2000:]
    text = result.stdout
    check = next(line for line in text.splitlines() if line.startswith("Data check ("))
    assert re.match(r"Data check \(train [\d,]+, test [\d,]+ images;", check), check
    assert "{" not in check
    test_set = [line for line in text.splitlines() if line.startswith("- test: ")]
    assert len(test_set) == 1, test_set
    assert re.search(rf"\| macro_f1 \| [\d.]* \| failed: {re.escape(why)} \|", text), text


def test_removing_the_holder_is_refused_or_recorded_and_rollback_steps_back(two, run_cli):
    good, weak = two
    with ModelStore() as store:
        for ref in (good, weak, good):  # 1 -> 2 -> 1 by hand, each move recorded
            store.set_alias(ref, "production")
    assert_clean_failure(run_cli("registry", "remove", good), 2, "--force")
    steps = [run_cli("registry", "rollback", "synthetic:production") for _ in range(2)]
    assert f"-> {weak}" in steps[0].stdout  # back one move
    assert steps[1].exit_code == 0 and f"-> {good}" in steps[1].stdout  # and another: stepping, not toggling
    assert run_cli("registry", "remove", good, "--force").exit_code == 0
    history = json.loads(run_cli("registry", "history", "synthetic:production", "--format", "json").stdout)
    assert history[-1]["to"] is None and history[-1]["evidence"] == {"removed": good}
    first = _verdict(run_cli("gate", weak, "--against", "synthetic:production", "--min-delta", "-90",
                             "--format", "json"), 0)
    assert "was unset by move" in first["conditions"][0]["reason"]  # not a silent first promotion
    assert_clean_failure(run_cli("registry", "history", "nosuch:production"), 2, "unknown model")


def test_an_identical_candidate_is_called_a_tie():
    from harness.evaluate.gate import _why_not
    from harness.evaluate.paired import PairedDiff

    same = PairedDiff("accuracy", 0.0, 0.0, 0.0, 1.0, 100, 1, 1000)
    assert "a tie" in _why_not(same, 0.0, "better")
    worse = PairedDiff("accuracy", -0.05, -0.08, -0.02, 0.001, 100, 1, 1000)
    assert "worse" in _why_not(worse, 0.0, "better")
