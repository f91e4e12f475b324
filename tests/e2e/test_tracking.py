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
    events: list[tuple[str, str]] = []  # (what, run id), in the order the hooks were called

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
            self.events.append((f"artifact {role} {path.rsplit('/', 1)[-1]}", run.id))

    @harness.hookimpl
    def track_select_finished(self, run, rows, winner):
        if "recorder" in run.trackers:
            self.calls.append(("select", (len(rows), winner)))

    @harness.hookimpl
    def track_run_finished(self, run, status, metrics, version):
        if "recorder" in run.trackers:
            self.calls.append(("finished", (run.kind, status, version, metrics)))
            self.events.append(("finished", run.id))


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


@pytest.mark.slow
def test_select_is_a_parent_run_of_its_candidates(run_cli):
    Recorder.calls, Recorder.events = [], []
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
    # each child is named after its candidate, and ends after its ONNX export with what select weighs
    assert [s.name for s in starts[1:]] == ["synthetic/cifar_convnet_xs", "synthetic/cifar_resnet8"]
    rows = {r["model"]: r for r in json.loads(result.stdout)["rows"]}
    for child in starts[1:]:
        mine = [what for what, run_id in Recorder.events if run_id == child.id]
        assert mine == ["artifact weights model.safetensors", "artifact onnx " + mine[1].split()[-1], "finished"]
        assert mine[1].endswith(".onnx")
    ends = [c[1] for c in Recorder.calls if c[0] == "finished" and c[1][0] == "finetune"]
    assert len(ends) == 2
    for _, status, version, metrics in ends:
        row = rows.get(version) or pytest.fail(f"{version} not in {sorted(rows)}; {Recorder.calls}")
        assert status == "FINISHED" and metrics["accuracy"] == pytest.approx(row["accuracy"], abs=1e-4)
        assert metrics["select/ort_b1_ms"] == pytest.approx(row["ort_b1_ms"])
        assert metrics["select/ort_b32_img_s"] == pytest.approx(row["ort_b32_img_s"])
        assert metrics["select/size_mb"] == pytest.approx(row["size_mb"])
        assert metrics["select/params_m"] == pytest.approx(row["params_m"])
        assert metrics["select/parity_passed"] == (1.0 if row["parity"] == "passed" else 0.0)
        assert metrics["select/val_accuracy"] == pytest.approx(row["val"])


class Flaky:
    """Starts its runs, then fails in the middle of one: it must still be told the run ended."""

    ended: list[tuple[str, str]] = []

    @harness.hookimpl
    def track_names(self) -> list[str]:
        return ["flaky"]

    @harness.hookimpl
    def track_run_started(self, run):
        pass

    @harness.hookimpl
    def track_epoch_ended(self, run, epoch, metrics):
        raise TimeoutError("server went away")

    @harness.hookimpl
    def track_run_finished(self, run, status, metrics, version):
        self.ended.append((run.id, status))


def test_a_tracker_switched_off_mid_run_is_still_told_the_run_ended(run_cli):
    Flaky.ended = []
    result = run_cli(*FINETUNE, "--track", "flaky", plugins=make_plugins([Flaky()]))
    assert result.exit_code == 0, result.output
    assert "tracker 'flaky' failed in track_epoch_ended" in result.output  # the tracker, not the plugin
    assert result.output.count("server went away") == 1
    assert [status for _, status in Flaky.ended] == ["FINISHED"]


def test_a_broken_tracker_is_reported_once_and_training_goes_on(run_cli):
    result = run_cli(*FINETUNE, "--track", "broken", plugins=make_plugins([Broken()]))
    assert result.exit_code == 0, result.output
    assert result.output.count("tracking server unreachable") == 1
    with ModelStore() as store:
        assert len(store.list()) == 1


class Exits:
    @harness.hookimpl
    def track_names(self) -> list[str]:
        return ["exits"]

    @harness.hookimpl
    def track_run_started(self, run):
        raise SystemExit(3)  # sys.exit in a tracker: it must not end (nor silently stop) the run


def test_a_tracker_calling_sys_exit_is_switched_off_and_training_goes_on(run_cli):
    result = run_cli(*FINETUNE, "--track", "exits", plugins=make_plugins([Exits()]))
    assert result.exit_code == 0, result.output
    assert "tracker 'exits' failed in track_run_started" in result.output
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
    assert [a.path for a in client.list_artifacts(single.info.run_id, "weights")] == ["weights/model.safetensors"]
    assert single.info.run_name == "synthetic/cifar_convnet_xs"
    parent = next(r for r in runs if r.data.tags.get("harness.kind") == "select")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["synthetic/cifar_convnet_xs", "synthetic/cifar_resnet8"]
    rows = {r["model"]: r for r in json.loads(selected.stdout)["rows"]}
    for child in children:  # the trade-off select decides on, as metrics MLflow's compare view plots
        row = rows[child.data.tags["harness.version"]]
        assert child.info.status == "FINISHED"
        assert child.data.metrics["test_accuracy"] == pytest.approx(row["accuracy"], abs=1e-4)
        for column in ("ort_b1_ms", "ort_b32_img_s", "size_mb", "params_m", "gflops"):
            assert child.data.metrics[f"select/{column}"] == pytest.approx(row[column]), column
        assert child.data.metrics["select/parity_passed"] == (row["parity"] == "passed")
    assert parent.data.tags["harness.winner"] == json.loads(selected.stdout)["winner"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"leaderboard", "leaderboard.json"}
    assert {a.path for a in client.list_artifacts(children[0].info.run_id)} == {"onnx", "weights"}


@pytest.mark.slow
def test_an_unreachable_mlflow_server_is_switched_off_at_once(run_cli, monkeypatch, tmp_path):
    """MLflow's client retries a dead server for minutes (a 40 s fine-tune took 281 s); the probe
    switches the tracker off before the first run, the warning names the tracker, training goes on."""
    pytest.importorskip("mlflow", reason="pip install 'imgcls-harness[mlflow]'")
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")  # MLflow's own defaults: the probe is what
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")    # keeps this fast, not lower retry settings
    started = time.perf_counter()
    result = run_cli(*FINETUNE, "--track", "mlflow")
    took = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    assert "tracker 'mlflow' failed in track_run_started" in result.output
    assert f"MLflow tracking server http://127.0.0.1:{port} is unreachable" in result.output
    assert result.output.count("unreachable") == 1
    assert took < 90, took  # two epochs of 256 images; MLflow's own retries alone take minutes
    with ModelStore() as store:
        assert len(store.list()) == 1


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
    # the recipe is the HParams dashboard's session, against the final scores (not a text blob)
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams.api_pb2 import Status

    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["epochs"].number_value == 2 and start.hparams["model"].string_value == "cifar_convnet_xs"
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    assert "final/accuracy" in {m.name.tag for m in experiment.metric_infos}
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == Status.Value("STATUS_SUCCESS")
    assert "harness/params" not in events.Tags()["tensors"]
    assert folders[0].name.startswith("synthetic_cifar_convnet_xs-")


@pytest.mark.slow
def test_a_pretraining_is_an_mlflow_run_named_like_a_finetune(run_cli, monkeypatch, tmp_path):
    """README: a pretraining is a run named ``<dataset>/<model>`` with ``weights/model.safetensors``."""
    mlflow = pytest.importorskip("mlflow", reason="pip install 'imgcls-harness[mlflow]'")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # local artifact folder
    done = run_cli("pretrain", "cifar_convnet_xs", "--dataset", "synthetic", "--epochs", "1",
                   "--train-limit", "128", "--batch-size", "32", "--track", "mlflow", "--format", "json")
    assert done.exit_code == 0, done.output
    client = mlflow.tracking.MlflowClient()
    experiment = client.get_experiment_by_name("harness/synthetic")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "synthetic/cifar_convnet_xs" and run.info.status == "FINISHED"
    assert run.data.tags["harness.method"] == "supervised"
    assert run.data.tags["harness.version"] == json.loads(done.stdout)["model"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "weights")] == ["weights/model.safetensors"]


class Chatty:
    """A tracker that prints, as MLflow's client does with a tracking server ("View run ... at: URL")."""

    @harness.hookimpl
    def track_names(self) -> list[str]:
        return ["chatty"]

    @harness.hookimpl
    def track_run_finished(self, run, status, metrics, version):
        if "chatty" in run.trackers:
            print("View run at: http://example.invalid/run")


def test_a_trackers_prints_never_reach_the_json_on_stdout(run_cli):
    result = run_cli(*FINETUNE, "--track", "chatty", plugins=make_plugins([Chatty()]))
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # strict JSON: the tracker's line went to stderr
    assert "View run at" in result.stderr


def test_an_unknown_tracker_names_the_extra_only_for_our_own(run_cli, monkeypatch):
    monkeypatch.setenv("HARNESS_TRACK", "bogus")
    result = run_cli(*FINETUNE)
    assert result.exit_code == 2 and "imgcls-harness[" not in result.output and "harness plugins" in result.output
