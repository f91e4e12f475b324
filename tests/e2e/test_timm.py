"""timm backbones (``timm_*``): listed from an index without importing timm, built without weights,
weights read from a Hugging Face Hub cache laid out as the Hub writes it. Fine-tuning, export and
ONNX parity of a timm candidate through ``select`` are in test_report.py (one select run for both)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("timm")

from harness.models import build_model
from registry import DataError, UsageError

TINY = ["timm_test_resnet", "timm_test_convnext", "timm_test_efficientnet", "timm_test_vit"]


def _hub_repo(cache: Path, repo_id: str, state: dict[str, torch.Tensor], *, file: str = "model.safetensors",
              data: bytes | None = None) -> Path:
    """A repository in the Hub cache's real layout: refs/main names a snapshot that holds the file."""
    from safetensors.torch import save_file

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    if data is not None:
        (snapshot / file).write_bytes(data)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / file))
    return snapshot / file


def test_listing_a_torchvision_name_never_imports_timm_and_timm_names_come_from_the_index():
    import importlib.metadata

    from plugins import timm_backbones

    timm_backbones._index(importlib.metadata.version("timm"))  # the index this test run shares (built once)
    code = """
import sys
from harness.plugins import load_plugins
cat = load_plugins().catalogue
assert cat.backbones.get("resnet18") and "cifar_resnet20" in cat.backbones
assert [b.name for b in cat.backbones.list("cifar_resnet2*")] == ["cifar_resnet20"]
assert "timm" not in sys.modules, "a torchvision lookup imported timm"
names = [b.name for b in cat.backbones.list("timm_convnext_*")]
assert "timm_convnext_tiny" in names and all(n.startswith("timm_convnext_") for n in names), names
assert "timm" not in sys.modules, "listing timm's names imported timm: the index was not used"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_damaged_index_is_rebuilt(tmp_path, monkeypatch):
    from plugins import timm_backbones

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    import importlib.metadata

    path = timm_backbones.index_path(importlib.metadata.version("timm"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b'[{"name": "resn')  # a write cut short by a full disk
    entries = timm_backbones._index(importlib.metadata.version("timm"))
    assert any(e["name"] == "resnet18" for e in entries)
    assert json.loads(path.read_text()) == entries


def test_timm_names_and_tags_in_the_cli(run_cli):
    rows = json.loads(run_cli("list", "backbones", "timm/resnet18*", "--tags", "--format", "json").stdout)
    names = {r["name"] for r in rows}
    assert {"timm_resnet18.a1_in1k", "timm_resnet18.tv_in1k", "timm_resnet18d.ra2_in1k"} <= names
    a1 = next(r for r in rows if r["name"] == "timm_resnet18.a1_in1k")
    assert a1["license"] == "apache-2.0" and a1["dataset"] == "in1k" and a1["cached"] is False
    shown = json.loads(run_cli("show", "timm_test_resnet", "--measure", "--format", "json").stdout)[0]
    assert shown["source"].startswith("timm ") and shown["head"] == "fc"
    assert shown["measured"]["params"] > 0 and shown["measured"]["flops"] > 0
    assert shown["weights"][0]["hub_id"] == "timm/test_resnet.r160_in1k"
    missing = run_cli("show", "timm_resnet5O")
    assert missing.exit_code == 2 and "timm_resnet50" in missing.output


@pytest.mark.parametrize("name", TINY)
def test_tiny_timm_models_build_with_a_new_head_and_train(catalogue, name):
    backbone = catalogue.backbones.get(name)
    torch.manual_seed(0)
    model = build_model(catalogue, name, num_classes=5).train()
    # the smallest side harness will feed it (28 px Fashion-MNIST is scaled up to it)
    size = backbone.input_size if backbone.fixed_input_size else backbone.min_input_size
    assert 16 <= size <= 224
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 5)
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 4])).backward()
    assert model.get_submodule(backbone.head).weight.grad.abs().sum() > 0


def test_weights_come_from_the_hub_cache_and_are_never_unpickled(catalogue, tmp_path, monkeypatch):
    import timm

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    torch.manual_seed(1)
    published = timm.create_model("test_resnet", num_classes=1000).state_dict()
    _hub_repo(tmp_path / "hub", "timm/test_resnet.r160_in1k", published)

    model = build_model(catalogue, "timm_test_resnet.r160_in1k", num_classes=3)
    stem = next(k for k in published if k.endswith(".weight") and published[k].dim() == 4)
    assert torch.equal(model.state_dict()[stem], published[stem])  # the cached file's weights
    assert model.fc.out_features == 3  # and a fresh head of the task's width

    with pytest.raises(DataError, match=r"not cached.*models--timm--test_convnext\.r160_in1k"):
        build_model(catalogue, "timm_test_convnext.r160_in1k", num_classes=3)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    import io

    blob = io.BytesIO()
    torch.save({"conv.weight": Evil()}, blob)
    _hub_repo(tmp_path / "hub", "timm/test_vit.r160_in1k", {}, file="pytorch_model.bin", data=blob.getvalue())
    with pytest.raises(DataError, match="only plain tensors"):
        build_model(catalogue, "timm_test_vit.r160_in1k", num_classes=3)
    assert not (tmp_path / "pwned").exists()


def test_list_tags_says_what_is_cached(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    _hub_repo(tmp_path / "hub", "timm/test_resnet.r160_in1k", {"w": torch.zeros(1)})
    rows = json.loads(run_cli("list", "backbones", "timm_test_*", "--tags", "--format", "json").stdout)
    cached = {r["name"] for r in rows if r["cached"]}
    assert cached == {"timm_test_resnet.r160_in1k"}


def test_without_timm_a_timm_name_names_the_extra():
    from registry import Backbone, Catalogue, Family, Table

    def fill(table: Table) -> None:
        table.add(Backbone(name="resnet18", builder=lambda n, w: None, head="fc"))
        table.defer(Family(prefix="timm_", unavailable="the timm extra: pip install 'imgcls-harness[timm]'"),
                    lambda: None)

    catalogue = Catalogue({"backbone": fill})
    assert catalogue.backbones.names() == ["resnet18"]  # listing everything skips it quietly
    with pytest.raises(UsageError, match=r"timm_\*, which needs the timm extra: pip install"):
        catalogue.backbones.get("timm/resnet50")


def test_top1_from_timms_published_results_table(run_cli, tmp_path, monkeypatch):
    from harness.plugins import load_plugins

    table = tmp_path / "results-imagenet.csv"  # timm's results/results-imagenet.csv layout
    table.write_text("model,top1,top1_err,top5,top5_err,param_count,img_size,crop_pct,interpolation\n"
                     "resnet18.a1_in1k,71.490,28.510,89.930,10.070,11.69,288,1.000,bicubic\n"
                     'test_vit.r160_in1k,42.000,58.000,60.000,40.000,"1,014.45",160,0.950,bicubic\n')
    monkeypatch.setenv("HARNESS_TIMM_RESULTS", str(table))
    plugins = load_plugins(entry_points=True)  # a fresh catalogue reads the variable
    rows = {r["name"]: r for pattern in ("timm_resnet18.*", "timm_test_vit.*")
            for r in json.loads(run_cli("list", "backbones", pattern, "--format", "json", plugins=plugins).stdout)}
    assert rows["timm_resnet18.a1_in1k"]["top1"] == 71.49 and rows["timm_resnet18.a1_in1k"]["params_m"] == 11.69
    assert rows["timm_test_vit.r160_in1k"]["params_m"] == 1014.45
    assert rows["timm_resnet18.a2_in1k"]["top1"] is None  # not in the table: no number made up
    table.write_text("model,accuracy\nresnet18.a1_in1k,71.5\n")
    broken = run_cli("list", "backbones", "timm_resnet18", plugins=load_plugins(entry_points=True))
    assert broken.exit_code == 2 and "HARNESS_TIMM_RESULTS" in broken.output and "results-imagenet.csv" in broken.output


def test_the_conformance_kit_checks_a_sample_of_the_zoo(run_cli):
    from harness.plugins import load_plugins

    plugins = load_plugins(entry_points=True)  # the entry-point name, as a user's install has it
    result = run_cli("plugins", "check", "timm_backbones", "--only", "timm/test_resnet", "--no-export",
                     "--format", "json", plugins=plugins)
    rows = json.loads(result.stdout)
    assert result.exit_code == 0 and {r["name"] for r in rows} == {"timm_test_resnet"} and all(r["ok"] for r in rows)
    nothing = run_cli("plugins", "check", "timm_backbones", "--only", "resnet50", plugins=plugins)
    assert nothing.exit_code == 2 and "matches --only 'resnet50'" in nothing.output
