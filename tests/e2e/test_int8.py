"""INT8 with real ONNX Runtime: what is quantised, the measured verdict, and export writing or refusing."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from harness.onnx.quantize import quantize_int8


class GatedNet(nn.Module):
    """Conv+BN+ReLU, a squeeze-excitation gate (Sigmoid, Mul), a residual Add, pooling and a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.gate = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = torch.relu(self.conv(x))
        y = y * torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))
        return self.head((x + y).mean((2, 3)))


@pytest.fixture(scope="module")
def gated_onnx(tmp_path_factory) -> Path:
    """Exported with the legacy exporter: a second here, where the dynamo exporter (tested in the slow
    tests below and in test_onnx.py) takes 5-15 s; quantization sees the same op types either way."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gated") / "gated.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter says it is legacy
        torch.onnx.export(GatedNet().eval(), (torch.randn(2, 3, 16, 16),), str(path), dynamo=False,
                          opset_version=18, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    model = onnx.load(str(path))
    model.metadata_props.add(key="input_size", value="16")
    onnx.save(model, str(path))
    return path


def _calibration(n: int = 64) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 16, 16), dtype=np.float32)


def test_convolutions_are_quantised_per_channel_and_gates_stay_float(gated_onnx, tmp_path):
    result = quantize_int8(gated_onnx, tmp_path / "gated.int8.onnx", _calibration())
    ops = {o.op_type: (o.quantised, o.total) for o in result.ops}
    assert ops["Conv"] == (3, 3) and ops["Gemm"] == (1, 1) and ops["Add"] == (1, 1)
    assert ops["Mul"][0] == 0 and ops["Sigmoid"][0] == 0  # the squeeze-excitation gate is left in float
    assert result.per_channel and result.calibration_images == 64 and result.preprocess_error is None
    graph = onnx.load(str(result.path)).graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    for conv in (n for n in graph.node if n.op_type == "Conv"):
        data, weight = producers[conv.input[0]], producers[conv.input[1]]
        assert data.op_type == "DequantizeLinear" and weight.op_type == "DequantizeLinear"
        assert inits[weight.input[0]].data_type == onnx.TensorProto.INT8
        out_channels = inits[weight.input[0]].dims[0]
        assert list(inits[weight.input[1]].dims) == [out_channels]  # one scale per output channel
    assert read_meta(result.path)["input_size"] == "16"  # the INT8 file keeps the export's metadata


def read_meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def test_a_failed_pre_process_is_reported_and_the_plain_file_quantised(gated_onnx, tmp_path):
    out = tmp_path / "gated.int8.onnx"
    (tmp_path / "gated.int8.prepared.onnx").mkdir()  # quant_pre_process cannot write its output there
    heard: list[str] = []
    result = quantize_int8(gated_onnx, out, _calibration(), warn=heard.append)
    assert result.preprocess_error and len(heard) == 1 and "pre-processing failed" in heard[0]
    assert dict((o.op_type, o.quantised) for o in result.ops)["Conv"] == 3 and out.is_file()


@pytest.mark.slow
def test_measured_verdict_on_a_trained_model(trained, builtin_plugins, tmp_path):
    from harness.context import Context
    from harness.evaluate.int8 import Int8Policy, decide
    from harness.evaluate.int8_check import check_int8
    from harness.onnx.export import export_model
    from harness.select.row import row_from_versions
    from harness.select.view import compact
    from registry import keys

    with Context(builtin_plugins, quiet=True) as ctx:
        fp32 = export_model(ctx, trained, tmp_path, register=False).info.path
        found = check_int8(ctx, trained, fp32, tmp_path / "int8.onnx", batches=(1, 4), samples=200)
        assert [s.batch for s in found.speed] == [1, 4] and all(len(s.round_ratios) == 3 for s in found.speed)
        assert all(s.fp32_ms > 0 and s.int8_ms > 0 for s in found.speed)
        assert found.offered == decide(found.speed, found.accuracy, Int8Policy())[0]  # the rule, on real figures
        assert found.decided_on == "val" and [a.split for a in found.accuracy] == ["val", "test"]
        assert found.accuracy[0].images.startswith("val: 100 of 1,000 train images of synthetic")
        assert dict((o.op_type, o.quantised) for o in found.ops)["Conv"] >= 1 and found.per_channel
        assert found.size_ratio < 0.5 and found.calibration_images == 512
        offered, why, _ = decide(found.speed, found.accuracy, Int8Policy(min_speedup=1000.0))
        assert not offered and ("not faster beyond noise" in why or "slower" in why)
        version = ctx.store.update_metrics(trained, {keys.INT8: found.as_dict()})
        row = row_from_versions("cifar_convnet_s", [version], "accuracy", True)
    assert row.int8 == found and row.as_dict()["int8_offered"] is found.offered
    assert found.summary() in compact([row], "accuracy")


def test_export_int8_needs_a_task_and_int8_flags_need_int8(run_cli, tmp_path):
    no_task = run_cli("export", "cifar_convnet_xs", "--int8", "--out", str(tmp_path))
    assert no_task.exit_code == 2 and "pass --task" in no_task.output and not list(tmp_path.iterdir())
    stray = run_cli("export", "cifar_convnet_xs", "--int8-max-drop", "0.5", "--out", str(tmp_path))
    assert stray.exit_code == 2 and "--int8-max-drop only applies to INT8: add --int8" in stray.output


@pytest.mark.slow
def test_export_refuses_int8_that_does_not_pay_unless_forced(run_cli, trained, tmp_path):
    from registry.store import ModelStore

    tmp_path = tmp_path / "exports"

    refused = run_cli("export", trained, "--int8", "--int8-min-speedup", "1000", "--out", str(tmp_path),
                      "--format", "json")
    assert refused.exit_code == 0, refused.output
    row = json.loads(refused.stdout)
    assert row["int8_offered"] is False and row["int8_path"] is None and row["int8"].startswith("not offered")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic-v1.onnx"]  # only FP32, no leftovers
    assert "Wrote only the FP32 file" in refused.stderr and "not faster beyond noise" in refused.stderr
    forced = run_cli("export", trained, "--force-int8", "--int8-min-speedup", "1000", "--out", str(tmp_path),
                     "--format", "json")
    assert forced.exit_code == 0, forced.output
    row = json.loads(forced.stdout)
    assert row["int8_forced"] is True and Path(row["int8_path"]).name == "synthetic-v1.int8.onnx"
    assert "because of --force-int8" in forced.stderr and row["int8_verdict"]["offered"] is False
    assert json.loads(read_meta(Path(row["int8_path"]))["class_names"])[0] == "class_0"
    with ModelStore() as store:
        version = store.get(trained)
        assert version.artifacts["onnx-int8"].meta["forced"] is True
        assert version.metrics["int8"]["policy"]["min_speedup"] == 1000.0


@pytest.mark.slow
def test_select_int8_adds_the_verdict_to_rows_and_table(run_cli):
    args = ("select", "--task", "synthetic", "--candidates", "cifar_convnet_xs", "--epochs", "1", "--train-limit",
            "300", "--no-robustness", "--int8", "--int8-max-drop", "2")
    result = run_cli(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["rows"][0]
    assert isinstance(row["int8_offered"], bool) and row["int8_drop_on"] == "val"
    assert row["int8_speedup_b1"] > 0 and row["int8_speedup_b32"] > 0 and "Conv 6/6" in row["int8_ops"]
    assert row["int8"].startswith("not offered") is not row["int8_offered"]
    table = run_cli("leaderboard", "--task", "synthetic")  # read back from the store, as select showed it
    assert row["int8"] in table.stdout and "int8: offered only when faster" in table.stdout
    stray = run_cli("select", "--task", "synthetic", "--int8-max-drop", "2")
    assert stray.exit_code == 2 and "--int8-max-drop applies to --int8" in stray.output
