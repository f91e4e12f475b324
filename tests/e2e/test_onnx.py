"""ONNX export, parity with PyTorch, safe loading, and the benchmark's output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from harness.errors import DataError, ExportError, UsageError
from harness.models import build_model
from harness.onnx.export import export_onnx
from harness.onnx.runtime import check_external_data, ort_session, read_onnx_metadata

# One member of every backbone family (the smallest), at a small input.
FAMILIES = ["alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "efficientnet_v2_s", "googlenet",
            "inception_v3", "maxvit_t", "mnasnet0_5", "mobilenet_v2", "mobilenet_v3_small", "regnet_x_400mf",
            "resnet18", "resnext50_32x4d", "shufflenet_v2_x0_5", "squeezenet1_1", "swin_t", "swin_v2_t",
            "vgg11", "vit_b_32", "wide_resnet50_2", "cifar_resnet20", "cifar_convnet_s"]


def test_families_cover_the_catalogue(catalogue):
    families = {catalogue.backbones.get(n).family for n in catalogue.backbones.names() if not n.startswith("timm_")}
    assert families == {catalogue.backbones.get(n).family for n in FAMILIES}


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_exports_and_matches_pytorch(catalogue, tmp_path, name):
    backbone = catalogue.backbones.get(name)
    size = backbone.input_size if backbone.fixed_input_size else max(backbone.min_input_size, 64)
    torch.manual_seed(0)
    model = build_model(catalogue, name, num_classes=10).eval()
    info = export_onnx(model, tmp_path / "m.onnx", input_size=size, metadata={"backbone": name})
    assert info.exporter == "dynamo" and info.fallback_reason is None
    session = ort_session(info.path)
    assert session.get_providers()[0] == "CPUExecutionProvider"
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    for batch in (1, 3):  # neither is the export batch (2)
        x = torch.randn(batch, 3, size, size)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(["logits"], {"input": x.numpy()})[0]
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)
    meta = read_onnx_metadata(info.path)
    assert meta["backbone"] == name and meta["input_size"] == size


def test_legacy_exporter_is_a_fallback_that_says_so(tmp_path):
    class DataDependent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 4 * 4, 2)

        def forward(self, x):
            y = self.fc(x.flatten(1))
            if y.sum() > 1e9:  # data-dependent Python branch: torch.export refuses, tracing takes one path
                return -y
            return y

    info = export_onnx(DataDependent().eval(), tmp_path / "d.onnx", input_size=4)
    assert info.exporter == "torchscript" and info.fallback_reason
    assert read_onnx_metadata(info.path)["exporter"] == "torchscript"
    assert "exporter_fallback_reason" in read_onnx_metadata(info.path)


def test_unexportable_operator_is_named(tmp_path):
    class Eig(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eigvals(x[:, 0]).real.flatten(1)

    with pytest.raises(ExportError, match="operator aten::linalg_eigvals"):
        export_onnx(Eig(), tmp_path / "e.onnx", input_size=4)
    assert list(tmp_path.iterdir()) == []  # nothing partial is left behind


def test_unsupported_opset_is_refused_before_export(tmp_path):
    with pytest.raises(UsageError, match="opset 99999 is not supported"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx", input_size=4, opset=99999)


@pytest.fixture
def tuned(trained):
    return trained


def test_export_registers_artifact_and_check_onnx_passes(run_cli, tuned, tmp_path):
    from registry.store import ModelStore

    out = run_cli("export", tuned, "--out", str(tmp_path), "--format", "json")
    assert out.exit_code == 0, out.output
    info = json.loads(out.output)
    assert info["exporter"] == "dynamo" and Path(info["path"]).is_file()
    meta = read_onnx_metadata(info["path"])
    assert meta["class_names"][0] == "class_0" and meta["input_size"] == 32 and len(meta["mean"]) == 3
    with ModelStore() as store:
        artifact = store.get(tuned).artifacts["onnx"]
        assert artifact.sha256 == info["sha256"] and artifact.meta["opset"] == 18
    report = run_cli("check-onnx", tuned, "--samples", "64", "--format", "json")
    assert report.exit_code == 0, report.output
    data = json.loads(report.output)
    assert data["passed"] and data["top1_agreement"] == 1.0 and data["batch_sizes"] == [1, 16]
    assert data["providers"] == ["CPUExecutionProvider"] and data["max_abs_diff"] < 1e-4
    with ModelStore() as store:
        assert store.get(tuned).tags["parity"] == "passed"
    by_file = run_cli("check-onnx", info["path"], "--samples", "32", "--format", "json")
    assert by_file.exit_code == 0 and json.loads(by_file.output)["model"] == tuned


def test_altered_onnx_weights_fail_parity(run_cli, tuned, tmp_path):
    from onnx import numpy_helper

    from registry.store import ModelStore

    info = json.loads(run_cli("export", tuned, "--out", str(tmp_path), "--format", "json").output)
    proto = onnx.load(info["path"])
    biggest = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
    values = numpy_helper.to_array(biggest).copy()
    values *= 1.05
    biggest.CopyFrom(numpy_helper.from_array(values, biggest.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, str(broken))
    result = run_cli("check-onnx", str(broken), "--samples", "64", "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.output.split("parity FAILED")[0])["passed"] is False
    with ModelStore() as store:  # a file from outside the store never changes the version's record
        assert "parity" not in store.get(tuned).tags
        assert "parity" not in store.get(tuned).metrics


def test_model_exported_in_training_mode_differs(catalogue, tmp_path):
    """The classic mistake: exported with BatchNorm in training mode, it disagrees with eval PyTorch."""
    torch.manual_seed(0)
    model = build_model(catalogue, "cifar_resnet20", num_classes=10)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    model.train()
    path = tmp_path / "train.onnx"
    torch.onnx.export(model, (torch.randn(2, 3, 32, 32),), str(path), dynamo=False, input_names=["input"],
                      output_names=["logits"], training=torch.onnx.TrainingMode.TRAINING,
                      dynamic_axes={"input": {0: "batch"}})
    model.eval()
    x = torch.randn(8, 3, 32, 32)
    got = ort_session(path).run(["logits"], {"input": x.numpy()})[0]
    with torch.no_grad():
        expected = model(x).numpy()
    assert not np.allclose(got, expected, atol=1e-4, rtol=1e-3)


def _model_with_external_data(folder: Path, location: str) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(2, 2), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])], [weight])
    model = helper.make_model(graph)
    onnx.external_data_helper.set_external_data(model.graph.initializer[0], location=location)
    model.graph.initializer[0].ClearField("raw_data")
    path = folder / "model.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_outside_the_folder_or_through_links_is_refused(tmp_path, run_cli):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    with pytest.raises(DataError, match="outside the model's folder"):
        check_external_data(_model_with_external_data(tmp_path / "a", "../secret.bin"))
    with pytest.raises(DataError, match="outside the model's folder"):
        check_external_data(_model_with_external_data(tmp_path / "b", str(secret)))
    linked = _model_with_external_data(tmp_path / "c", "weights.bin")
    os.symlink(secret, tmp_path / "c" / "weights.bin")
    with pytest.raises(DataError, match="symbolic link"):
        check_external_data(linked)
    good = _model_with_external_data(tmp_path / "d", "weights.bin")
    (tmp_path / "d" / "weights.bin").write_bytes(secret.read_bytes())
    assert check_external_data(good) == [tmp_path / "d" / "weights.bin"]
    os.symlink(good, tmp_path / "link.onnx")
    with pytest.raises(DataError, match="symbolic link"):
        ort_session(tmp_path / "link.onnx")
    refused = run_cli("check-onnx", str(tmp_path / "a" / "model.onnx"), "--task", "synthetic")
    assert refused.exit_code == 2 and "refusing" in refused.output


@pytest.mark.slow
def test_bench_json_has_every_runtime_and_batch(run_cli, tuned):
    result = run_cli("bench", tuned, "--batch-sizes", "1,4", "--rounds", "1", "--iters", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stderr may warn that the machine is busy
    assert report["reliable"] is (not report["timing_problems"])
    seen = {(r["runtime"], r["batch"]) for r in report["rows"]}
    assert seen == {(r, b) for r in ("torch", "onnxruntime", "onnxruntime-int8") for b in (1, 4)}
    assert all(r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] for r in report["rows"])
    # fast models are timed past --iters for a stable median; each row says how its runtime ran
    assert all(r["samples"] >= 2 for r in report["rows"]) and max(r["samples"] for r in report["rows"]) > 2
    eager = [r for r in report["rows"] if r["runtime"] == "torch"]
    assert all("inference_mode" in r["setup"] and ("channels_last" in r["setup"] or "contiguous" in r["setup"])
               for r in eager)
    assert all("no spinning" in r["setup"] for r in report["rows"] if r["runtime"] == "onnxruntime")
    assert set(report["speedups"]) == {"ort_vs_eager_b1", "int8_vs_fp32_b1", "ort_vs_eager_b4", "int8_vs_fp32_b4"}
    assert report["flops_unit"].startswith("FLOPs, 2 per multiply-add") and report["params"] > 0
    assert abs(report["accuracy"]["int8_change_points"]) <= 100
    verdict = report["int8"]  # one round cannot tell a speed-up from noise: never offered
    assert verdict["offered"] is False and "1 round(s); 3 are needed" in verdict["reason"]
    assert [a["split"] for a in verdict["accuracy"]] == ["val", "test"] and verdict["policy"]["max_drop_points"] == 1.0
    assert {s["batch"] for s in verdict["speed"]} == {1, 4} and verdict["per_channel"] is True
    bad = run_cli("bench", tuned, "--runtimes", "tensorrt")
    assert bad.exit_code == 2 and "unknown runtime" in bad.output
