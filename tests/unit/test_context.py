"""The Context: shared state in one object, rebuilt in worker processes with the same plugins."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import CODE_PLUGIN, make_plugins

import harness
from harness.context import Context, ContextSpec, DataOptions
from harness.errors import PluginError
from harness.onnx.bench import worker_env


def test_spec_round_trips_and_rebuilds_plugins_passed_in_code(tmp_path):
    ctx = Context(make_plugins([CODE_PLUGIN]), home=tmp_path / "home", data=DataOptions("/data", True),
                  device="cpu", quiet=True)
    spec = ContextSpec.from_json(ctx.spec().to_json())
    assert spec.plugins["in_code"][-1] == "helpers:CODE_PLUGIN" and spec.data == DataOptions("/data", True)
    script = ("import sys, json\nfrom harness.context import Context, ContextSpec\n"
              "ctx = Context.from_spec(ContextSpec.from_json(sys.argv[1]))\n"
              "print(json.dumps({'code_net': 'code_net' in ctx.catalogue.backbones, 'home': str(ctx.store.home),"
              " 'device': ctx.device, 'quiet': ctx.quiet}))")
    proc = subprocess.run([sys.executable, "-c", script, spec.to_json()], capture_output=True, text=True,
                          env=worker_env(1))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"code_net": True, "home": str(tmp_path / "home"), "device": "cpu",
                                       "quiet": True}


def test_a_plugin_another_process_cannot_import_is_refused_by_name():
    class Local:
        @harness.hookimpl
        def register_metrics(self, register):
            pass

    ctx = Context(make_plugins([Local()], builtins=False))
    with pytest.raises(PluginError, match="plugin 'Local' was passed in code"):
        ctx.spec()


def test_the_torch_benchmark_worker_builds_a_backbone_from_a_plugin_passed_in_code(tmp_path):
    from harness.onnx.bench import bench

    with Context(make_plugins([CODE_PLUGIN]), home=tmp_path / "home", quiet=True) as ctx:
        report = bench(ctx, "code_net", batch_sizes=(1,), runtimes=("torch", "onnxruntime"), rounds=1, iters=2,
                       warmup=1, threads=1, record=False)
    assert {(r.runtime, r.batch) for r in report.rows} == {("torch", 1), ("onnxruntime", 1)}
    assert report.median("torch", 1) > 0 and "ort_vs_eager_b1" in report.speedups


def test_the_store_opens_only_when_used(tmp_path, builtin_plugins):
    with Context(builtin_plugins, home=tmp_path / "home") as ctx:
        assert ctx.catalogue.tasks.get("synthetic").name == "synthetic"
        assert not (tmp_path / "home").exists()
        quiet = ctx.replace(quiet=True)
        assert quiet.quiet and not ctx.quiet and quiet.store is ctx.store
    assert (tmp_path / "home" / "store.db").is_file()
