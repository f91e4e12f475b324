"""The CLI as a user and a CI system see it: formats, exit codes, no tracebacks."""

from __future__ import annotations

import csv
import io
import json
import subprocess

import pytest
from helpers import harness_exe

import harness


def test_version(run_cli):
    result = run_cli("--version")
    assert result.exit_code == 0 and harness.__version__ in result.output


def test_plugins_json_lists_builtins_with_distribution(run_cli):
    rows = json.loads(run_cli("plugins", "--format", "json").output)
    assert {r["name"] for r in rows} >= {"plugins.metrics", "plugins.torchvision_backbones"}
    assert all(r["status"] == "loaded" for r in rows)


def test_list_backbones_pattern_and_tags(run_cli):
    rows = json.loads(run_cli("list", "backbones", "resnet*", "--format", "json").output)
    assert [r["name"] for r in rows] == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    r18 = next(r for r in rows if r["name"] == "resnet18")
    assert r18["params_m"] == 11.69 and r18["gflops"] == 3.628 and r18["tags"] == ["tv_in1k"]
    tags = json.loads(run_cli("list", "backbones", "*.tv2_in1k", "--format", "json").output)
    assert tags and all(r["name"].endswith(".tv2_in1k") for r in tags)
    assert "resnet50.tv2_in1k" in {r["name"] for r in tags}
    swag = json.loads(run_cli("list", "backbones", "vit_b_16", "--tags", "--format", "json").output)
    assert {r["name"] for r in swag} == {"vit_b_16.tv_in1k", "vit_b_16.swag_e2e_in1k", "vit_b_16.swag_linear_in1k"}


def test_list_each_kind_in_each_format(run_cli):
    for kind in ("backbones", "datasets", "metrics", "tasks"):
        rows = json.loads(run_cli("list", kind, "--format", "json").output)
        assert rows, kind
        text = run_cli("list", kind, "--format", "csv").output
        parsed = list(csv.DictReader(io.StringIO(text)))
        assert len(parsed) == len(rows) and "name" in parsed[0]
        table = run_cli("list", kind).output
        assert table.splitlines()[0].startswith("name")


def test_list_tasks_includes_required_tasks(run_cli):
    names = {r["name"] for r in json.loads(run_cli("list", "tasks", "--format", "json").output)}
    assert {"cifar10", "cifar100", "mnist", "fashion-mnist", "svhn", "synthetic"} <= names


def test_show_backbone_measures_params_and_flops(run_cli):
    [record] = json.loads(run_cli("show", "cifar_resnet20", "--measure", "--format", "json").output)
    assert record["kind"] == "backbone" and record["measured"]["feature_dim"] == 64
    head = 64 * 1000 + 1000  # measured with a 1000-class head
    assert 260_000 < record["measured"]["params"] - head < 290_000  # ResNet-20's body is 0.27M
    [tagged] = json.loads(run_cli("show", "resnet18.tv_in1k", "--format", "json", "--no-measure").output)
    assert tagged["selected_tag"] == "tv_in1k" and tagged["weights"][0]["hash_prefix"] == "f37072fd"


def test_show_ambiguous_name_lists_every_kind(run_cli):
    records = json.loads(run_cli("show", "cifar10", "--format", "json").output)
    assert [r["kind"] for r in records] == ["dataset", "task"]
    [only] = json.loads(run_cli("show", "cifar10", "--kind", "task", "--format", "json").output)
    assert only["protocol"]["input_size"] == 32


def test_unknown_names_exit_2_with_suggestion(run_cli):
    result = run_cli("show", "resnt18")
    assert result.exit_code == 2
    assert "did you mean 'resnet18'" in result.output and "Traceback" not in result.output
    result = run_cli("show", "resnet18.tv3_in1k")
    assert result.exit_code == 2 and "tv_in1k" in result.output
    result = run_cli("list", "backbonez")
    assert result.exit_code == 2 and "backbones" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--batch-sizes", "0"], "--batch-sizes '0': give positive integers"),
    (["--batch-sizes", "1,x"], "use comma-separated integers"),
    (["--batch-sizes", "1,,32"], "use comma-separated integers"),
    (["--batch-sizes", "1,32,1"], "1 given more than once; name each size once"),
    (["--batch-sizes", "1_000"], "use comma-separated integers"),
    (["--batch-sizes", "\u0661\u0662"], "use comma-separated integers"),
    (["--threads", "0"], "'--threads': 0 is not in the range x>=1"),
    (["--runtimes", "tensorrt"], "unknown runtime 'tensorrt'"),
])
def test_bench_flags_are_checked_before_any_work(run_cli, args, message):
    result = run_cli("bench", "cifar_convnet_s", *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_real_console_script_json_on_stdout_logs_on_stderr():
    proc = subprocess.run([*harness_exe(), "list", "metrics", "--format", "json"],
                          capture_output=True, text=True, check=True)
    rows = json.loads(proc.stdout)
    assert {"accuracy", "ece", "flops"} <= {r["name"] for r in rows}
    bad = subprocess.run([*harness_exe(), "show", "nope-not-here"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith("Error: unknown name")
    assert "Traceback" not in bad.stderr


def test_a_task_shows_that_its_quick_budget_selects_by_successive_halving(run_cli):
    shown = run_cli("show", "fashion-mnist", "--kind", "task").stdout
    assert "by successive halving to 9 epochs (finetune: 3)" in shown and "x 30 epochs" in shown
    assert "halving to 9 ep" in run_cli("list", "tasks").stdout


@pytest.mark.parametrize("name", ["cifar_convnet_s", "resnet18.tv_in1k"])
def test_a_version_may_not_take_a_backbones_name(run_cli, ctx, name):
    """A plain MODEL argument resolves to the backbone first: a version named like one could only be
    reached as NAME@N. Refused before any work, from the CLI and from Python."""
    from registry import UsageError
    from registry.store import ModelStore

    result = run_cli("finetune", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "1", "--name", name)
    assert result.exit_code == 2 and "is a backbone's name" in result.output and "--name" in result.output
    assert "epoch" not in result.output
    with ModelStore() as store:
        assert store.list() == []
    from harness.train.finetune import finetune
    from harness.train.recipe import Recipe

    with pytest.raises(UsageError, match="name .* is a backbone's name"):
        finetune(ctx, "cifar_convnet_xs", "synthetic", Recipe(epochs=1), name=name)


def test_a_misspelt_command_gets_its_close_matches(run_cli):
    result = run_cli("lst")
    assert result.exit_code == 2 and "No such command 'lst' (did you mean 'list'?)" in result.output
    result = run_cli("registry", "lsit")
    assert result.exit_code == 2 and "(did you mean 'list'?)" in result.output
    result = run_cli("xyzzy")
    assert result.exit_code == 2 and "did you mean" not in result.output
