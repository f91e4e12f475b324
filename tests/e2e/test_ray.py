"""The Ray executor on a real local Ray instance (2 CPUs), over generated data.

Rows must equal the serial executor's for the same seeds; a worker killed twice (Ray retries
once) becomes that candidate's failed row while the others finish; the store stays consistent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sloppy_plugin
from helpers import make_plugins

from registry import keys
from registry.store import ModelStore

ray = pytest.importorskip("ray", reason="pip install 'imgcls-harness[ray]'")
pytestmark = pytest.mark.slow

ARGS = ("select", "--task", "synthetic", "--candidates", "cifar_convnet_xs,cifar_resnet8", "--epochs", "1",
        "--seeds", "2", "--format", "json")


def _rows(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.output
    return {r["candidate"]: r for r in json.loads(result.stdout)["rows"]}


def test_ray_rows_equal_serial_rows_and_the_store_checks(run_cli, monkeypatch, tmp_path):
    serial = _rows(run_cli(*ARGS))
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "ray-home"))
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # MLflow's SQLite store keeps artifacts under ./mlruns
    distributed = _rows(run_cli(*ARGS, "--executor", "ray", "--cpus-per-trial", "1", "--track", "mlflow"))
    assert set(serial) == set(distributed)
    for name, row in serial.items():
        other = distributed[name]
        assert other["status"] == "ok" and other["parity"] == "passed" and other["ort_b1_ms"] > 0
        assert (other["accuracy"], other["fingerprint"], other["seeds"]) == (row["accuracy"], row["fingerprint"], 2)
        # the per-image predictions travel from the workers: the paired comparison is the same
        assert (other["val"], other["vs_best"], other["tied"]) == (row["val"], row["vs_best"], row["tied"])
    with ModelStore() as store:
        versions = store.list("synthetic")
        assert len(versions) == 4  # 2 candidates x 2 seeds, registered by the driver only
        assert all(v.recipe["trained_on"] and v.recipe["source"] in serial for v in versions)
        assert all(keys.ROLE_PREDICTIONS in v.artifacts for v in versions)
        assert store.check() == []
    # runs trained on workers are reported by the driver, as children of the selection, epoch by epoch
    client = mlflow.tracking.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("harness/synthetic").experiment_id])
    parent = next(r for r in runs if r.data.tags["harness.kind"] == "select")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and all(r.data.tags.get("harness.trained_on") for r in children)
    assert all(len(client.get_metric_history(r.info.run_id, "train_loss")) == 1 for r in children)
    assert {r.data.tags["harness.version"] for r in children} == {v.ref for v in versions}
    again = _rows(run_cli(*ARGS, "--executor", "ray"))  # every row from the cache: nothing sent to Ray
    assert {r["status"] for r in again.values()} == {"cached"}
    assert run_cli("registry", "check").exit_code == 0


def test_a_worker_killed_twice_is_a_failed_row_and_the_others_finish(run_cli, monkeypatch):
    tests_dir = str(Path(sloppy_plugin.__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH")) if p))
    plugins = make_plugins([sloppy_plugin.DiesInWorkers()])
    result = run_cli("select", "--task", "synthetic", "--candidates", "crash_net,cifar_convnet_xs", "--epochs", "1",
                     "--executor", "ray", "--format", "json", plugins=plugins)
    assert result.exit_code == 0, result.output
    rows = {r["candidate"]: r for r in json.loads(result.stdout)["rows"]}
    assert rows["cifar_convnet_xs"]["status"] == "ok" and rows["cifar_convnet_xs"]["chosen"]
    crashed = rows["crash_net"]
    assert crashed["status"] == "failed" and crashed["stage"] == "train"
    assert "died twice" in crashed["reason"]
    with ModelStore() as store:
        assert [v.tags.get("candidate") for v in store.list("synthetic")] == ["cifar_convnet_xs"]
        assert store.check() == []


def test_executor_flags_are_checked_before_any_work(run_cli):
    result = run_cli("select", "--task", "synthetic", "--ray-address", "auto")
    assert result.exit_code == 2 and "--ray-address needs --executor ray" in result.output
    result = run_cli("select", "--task", "synthetic", "--executor", "ray", "--cpus-per-trial", "0")
    assert result.exit_code == 2


def test_study_transfer_on_ray_equals_serial_and_replays_views_in_workers(own, monkeypatch, tmp_path):
    args = ("study", "transfer", "--task", "synthetic:classes=5-9", "--starts", "cifar_convnet_xs,cifar_resnet8",
            "--labels", "4", "--seeds", "2", "--epochs", "1", "--no-converge", "--format", "json")
    serial = own(*args)
    assert serial.exit_code == 0, serial.output
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "ray-home"))
    remote = own(*args, "--executor", "ray")
    assert remote.exit_code == 0, remote.output
    key = lambda r: (r["start"], r["seed"])  # noqa: E731
    a = {key(r): r["value"] for r in json.loads(serial.stdout)["runs"]}
    b = {key(r): r["value"] for r in json.loads(remote.stdout)["runs"]}
    assert a == b and len(a) == 4
    with ModelStore() as store:
        assert store.check() == []
        assert all(v.recipe["trained_on"] for v in store.list())  # every run came back from a worker


def test_zoo_build_on_ray_registers_pretrained_models_a_rebuild_skips(own, tmp_path):
    spec = tmp_path / "zoo.toml"
    spec.write_text('name = "r"\nepochs = 1\nbatch_size = 32\ntrain_limit = 128\n[[groups]]\n'
                    'backbones = ["cifar_convnet_xs", "cifar_resnet8"]\nmethod = "supervised"\n'
                    'source = "synthetic:classes=0-4"\n')
    first = own("zoo", "build", "--spec", str(spec), "--executor", "ray", "--format", "json")
    assert first.exit_code == 0, first.output
    rows = json.loads(first.stdout)
    assert [r["status"] for r in rows] == ["built", "built"]
    with ModelStore() as store:
        versions = [store.get(r["model"]) for r in rows]
        assert all(v.kind == "pretrain" and v.tags["zoo"] == "r" and v.recipe["trained_on"] for v in versions)
        assert all(v.metrics["pretrain"]["val_accuracy"] is not None for v in versions)
        assert store.check() == []
    again = json.loads(own("zoo", "build", "--spec", str(spec), "--format", "json").stdout)
    assert [r["status"] for r in again] == ["existing", "existing"]
