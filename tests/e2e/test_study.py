"""``harness study transfer``: every start x strategy x budget x seed fine-tuned on the task's view,
summarised with intervals and gains over scratch, cached on a second run, plotted."""

from __future__ import annotations

import json

import pytest
from faultlib import assert_clean_failure

SPEC = ('name = "s"\nepochs = 1\nbatch_size = 32\ntrain_limit = 128\n[[groups]]\n'
        'backbones = ["cifar_convnet_xs"]\nmethod = "supervised"\nsource = "synthetic:classes=0-4"\n')


def test_study_table_gain_cache_and_plot(own, tmp_path):
    spec = tmp_path / "zoo.toml"
    spec.write_text(SPEC)
    assert own("zoo", "build", "--spec", str(spec), "--quiet").exit_code == 0
    args = ("study", "transfer", "--task", "synthetic:classes=5-9", "--starts", "zoo:s,cifar_convnet_xs",
            "--labels", "4,all", "--seeds", "2", "--strategies", "full,linear", "--epochs", "1")
    plot = tmp_path / "curves.png"
    first = own(*args, "--format", "json", "--plot", str(plot))
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert len(report["runs"]) == 2 * 2 * 2 * 2 and not any(r["cached"] for r in report["runs"])
    table = {(t["start"], t["strategy"], t["labels_per_class"]): t for t in report["table"]}
    assert len(table) == 8 and all(t["seeds"] == 2 for t in table.values())
    zoo_row = next(t for (s, st, lab), t in table.items() if s.startswith("zoo-s-") and st == "full" and lab == 4)
    scratch = table[("cifar_convnet_xs", "full", 4)]
    assert zoo_row["gain_vs_scratch"] == pytest.approx(zoo_row["mean"] - scratch["mean"], abs=1e-3)
    assert scratch["gain_vs_scratch"] is None
    assert report["correlation"][0]["method"] == "supervised" and report["correlation"][0]["pairs"] == 4
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = json.loads(own(*args, "--format", "json").stdout)
    assert all(r["cached"] for r in again["runs"])  # nothing trained twice
    assert [r["model"] for r in again["runs"]] == [r["model"] for r in report["runs"]]


@pytest.mark.parametrize("extra,needle", [
    (("--labels", "0"), "--labels"),
    (("--labels", "ten"), "--labels"),
    (("--strategies", "fancy"), "fancy"),
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
