"""Experiment tracking through the track_* hooks: real MLflow (SQLite store) and TensorBoard event
files read back with their own readers, a third-party tracker plugin, a broken one, bad names."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import make_plugins

import harness
from registry.store import ModelStore

FINETUNE = ("finetune", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "2", "--train-limit", "256",
            "--format", "json")


class Recorder:
    """A third-party tracker, as the README shows one: it records what the hooks tell it."""

    calls: list[tuple[str, Any]] = []

    @harness.hookimpl
    def track_names(self) -> list[str]:
        return ["recorder"]

    @harness.hookimpl
    def track_run_started(self, run):
        if "recorder" in run.trackers:
            self.calls.append(("started", run))

    @harness.hookimpl
    def track_epoch_ended(self, run, epoch, metrics):
        if "recorder" in run.trackers:
            self.calls.append(("epoch", (epoch, metrics)))

    @harness.hookimpl
    def track_artifact(self, run, role, path):
        if "recorder" in run.trackers:
            self.calls.append(("artifact", role))

    @harness.hookimpl
    def track_select_finished(self, run, rows, winner):
        if "recorder" in run.trackers:
            self.calls.append(("select", (len(rows), winner)))

    @harness.hookimpl
    def track_run_finished(self, run, status, metrics, version):
        if "recorder" in run.trackers:
            self.calls.append(("finished", (run.kind, status, version, metrics)))


class Broken:
    @harness.hookimpl
    def track_names(self) -> list[str]:
        return ["broken"]

    @harness.hookimpl
    def track_run_started(self, run):
        raise ConnectionError("tracking server unreachable")

    @harness.hookimpl
    def track_epoch_ended(self, run, epoch, metrics):
        raise AssertionError("a tracker that failed once is not called again")


def test_a_plugin_tracker_sees_run_epochs_artifacts_and_end(run_cli):
    Recorder.calls = []
    plugins = make_plugins([Recorder()])
    result = run_cli(*FINETUNE, "--track", "recorder", plugins=plugins)
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["model"]
    kinds = [c[0] for c in Recorder.calls]
    assert kinds == ["started", "epoch", "epoch", "artifact", "finished"]
    started = Recorder.calls[0][1]
    assert started.kind == "finetune" and started.experiment == "synthetic" and started.params["epochs"] == 2
    assert Recorder.calls[1][1][0] == 1 and "train_loss" in Recorder.calls[1][1][1]
    kind, status, version, metrics = Recorder.calls[-1][1]
    assert (kind, status, version) == ("finetune", "FINISHED", model) and "accuracy" in metrics
    listed = json.loads(run_cli("plugins", "--format", "json", plugins=plugins).stdout)
    assert ["recorder"] in [p["trackers"] for p in listed]  # harness plugins names the trackers


def test_select_is_a_parent_run_of_its_candidates(run_cli):
    Recorder.calls = []
    plugins = make_plugins([Recorder()])
    result = run_cli("select", "--task", "synthetic", "--candidates", "cifar_convnet_xs,cifar_resnet8", "--epochs",
                     "1", "--train-limit", "256", "--track", "recorder", "--format", "json", plugins=plugins)
    assert result.exit_code == 0, result.output
    starts = [c[1] for c in Recorder.calls if c[0] == "started"]
    parent = starts[0]
    assert parent.kind == "select" and [s.parent for s in starts[1:]] == [parent.id, parent.id]
    roles = [c[1] for c in Recorder.calls if c[0] == "artifact"]
    assert roles.count("onnx") == 2 and roles.count("weights") == 2 and roles[-1] == "leaderboard"
    assert ("select", (2, json.loads(result.stdout)["winner"])) in Recorder.calls
    assert Recorder.calls[-1][1][:2] == ("select", "FINISHED")


def test_a_broken_tracker_is_reported_once_and_training_goes_on(run_cli):
    result = run_cli(*FINETUNE, "--track", "broken", plugins=make_plugins([Broken()]))
    assert result.exit_code == 0, result.output
    assert result.output.count("tracking server unreachable") == 1
    with ModelStore() as store:
        assert len(store.list()) == 1


def test_unknown_tracker_is_refused_before_work(run_cli, monkeypatch):
    result = run_cli(*FINETUNE, "--track", "mlfow")
    assert result.exit_code == 2 and "mlflow" in result.output  # did you mean
    monkeypatch.setenv("HARNESS_TRACK", "nosuch")
    result = run_cli(*FINETUNE)
    assert result.exit_code == 2 and "nosuch" in result.output
    with ModelStore() as store:
        assert store.list() == []


@pytest.mark.slow
def test_mlflow_runs_read_back_through_mlflows_client(run_cli, monkeypatch, tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="pip install 'imgcls-harness[mlflow]'")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # local artifact folder
    tuned = run_cli(*FINETUNE, "--track", "mlflow")
    assert tuned.exit_code == 0, tuned.output
    selected = run_cli("select", "--task", "synthetic", "--candidates", "cifar_convnet_xs,cifar_resnet8",
                       "--epochs", "1", "--train-limit", "256", "--track", "mlflow", "--format", "json")
    assert selected.exit_code == 0, selected.output
    client = mlflow.tracking.MlflowClient()
    experiment = client.get_experiment_by_name("harness/synthetic")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4  # the fine-tune, the select parent, two candidates
    single = next(r for r in runs if r.data.tags.get("harness.version") == json.loads(tuned.stdout)["model"])
    assert single.info.status == "FINISHED" and single.data.params["epochs"] == "2"
    assert [m.step for m in client.get_metric_history(single.info.run_id, "train_loss")] == [1, 2]
    assert single.data.metrics["test_accuracy"] == pytest.approx(json.loads(tuned.stdout)["accuracy"])
    assert [a.path for a in client.list_artifacts(single.info.run_id)] == ["weights"]
    parent = next(r for r in runs if r.data.tags.get("harness.kind") == "select")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    assert parent.data.tags["harness.winner"] == json.loads(selected.stdout)["winner"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"leaderboard", "leaderboard.json"}
    assert {a.path for a in client.list_artifacts(children[0].info.run_id)} == {"onnx", "weights"}


@pytest.mark.slow
def test_tensorboard_event_files_read_back(run_cli, monkeypatch, tmp_path):
    pytest.importorskip("tensorboard", reason="pip install 'imgcls-harness[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("HARNESS_TENSORBOARD_DIR", str(tmp_path / "tb"))
    result = run_cli(*FINETUNE, "--track", "tensorboard")
    assert result.exit_code == 0, result.output
    folders = list((tmp_path / "tb" / "synthetic").iterdir())
    assert len(folders) == 1
    events = EventAccumulator(str(folders[0]))
    events.Reload()
    assert [e.step for e in events.Scalars("train_loss")] == [1, 2]
    assert events.Scalars("final/accuracy")[0].value == pytest.approx(json.loads(result.stdout)["accuracy"])
