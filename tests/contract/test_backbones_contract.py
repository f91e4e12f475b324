"""Contract tests over every registered backbone, and the three ways weights arrive."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
from helpers import make_plugins

from harness.errors import DataError, UsageError
from harness.models import (
    build_model,
    count_flops,
    count_params,
    get_submodule,
    head_in_features,
    weights_cache_path,
)


def _is_large(b) -> bool:
    return max((w.num_params or 0 for w in b.weights), default=0) > 25e6 or b.fixed_input_size


# timm's thousand architectures have their own tests (tests/e2e/test_timm.py)
_OURS = make_plugins(without=["plugins.timm_backbones"]).catalogue.backbones
SMALL_BACKBONES = [b.name for b in _OURS if not _is_large(b)]
LARGE_BACKBONES = [b.name for b in _OURS if _is_large(b)]


def test_catalogue_has_all_torchvision_models_and_small_nets(catalogue):
    from torchvision import models

    names = set(_OURS.names())
    assert set(models.list_models(module=models)) <= names
    assert {"cifar_resnet20", "cifar_convnet_s"} <= names
    assert set(SMALL_BACKBONES) | set(LARGE_BACKBONES) == names


def _check_head(catalogue, name, model, out) -> None:
    backbone = catalogue.backbones.get(name)
    assert out.shape == (2, 7)
    head = get_submodule(model, backbone.head)
    assert head.weight.grad is not None
    if backbone.feature_dim is not None:
        assert head_in_features(head) == backbone.feature_dim


@pytest.mark.parametrize("name", SMALL_BACKBONES)
def test_backbone_builds_forward_backward_with_new_head(catalogue, name):
    backbone = catalogue.backbones.get(name)
    size = max(backbone.min_input_size, 32)
    torch.manual_seed(0)
    model = build_model(catalogue, name, num_classes=7)
    model.train()
    out = model(torch.randn(2, backbone.channels, size, size))
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 6])).backward()
    _check_head(catalogue, name, model, out)
    assert get_submodule(model, backbone.head).weight.grad.abs().sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE_BACKBONES)
def test_large_backbone_builds_with_new_head_shapes_only(catalogue, name):
    """Over 25M parameters or fixed 224+ px inputs: built and run on the ``meta`` device (shapes and
    the autograd graph, no numbers), since random init and a CPU forward of ViT-H/14 alone took 45 s
    of the suite. Builders that compute with tensors (RegNet's widths) are built on the CPU first."""
    backbone = catalogue.backbones.get(name)
    size = backbone.input_size if backbone.fixed_input_size else max(backbone.min_input_size, 32)
    try:
        with torch.device("meta"):
            model = build_model(catalogue, name, num_classes=7)
    except NotImplementedError:
        model = build_model(catalogue, name, num_classes=7).to("meta")
    model.train()
    out = model(torch.randn(2, backbone.channels, size, size, device="meta"))
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 6], device="meta")).backward()
    assert out.device.type == "meta"
    _check_head(catalogue, name, model, out)


def test_pretrained_tag_loads_from_torch_hub_cache(catalogue):
    """Air-gapped use: a file placed under $TORCH_HOME/hub/checkpoints is used, no download."""
    from torchvision.models import resnet18

    _, tag = catalogue.backbone("resnet18.tv_in1k")
    path = weights_cache_path(tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(123)
    reference = resnet18().state_dict()
    torch.save(reference, path)
    model = build_model(catalogue, "resnet18.tv_in1k", num_classes=10)
    assert torch.equal(model.conv1.weight, reference["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_mean, reference["layer4.1.bn2.running_mean"])
    assert model.fc.out_features == 10


def test_missing_pretrained_weights_offline_name_the_cache_path(catalogue, monkeypatch):
    import urllib.error

    import torch.hub

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(DataError, match=r"hub/checkpoints/mobilenet_v3_small-047dcff4\.pth"):
        build_model(catalogue, "mobilenet_v3_small.tv_in1k", num_classes=10)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_file_loads_and_resizes_head(catalogue, tmp_path, suffix):
    torch.manual_seed(1)
    source = build_model(catalogue, "cifar_resnet20", num_classes=10)
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path)
    model = build_model(catalogue, "cifar_resnet20", num_classes=5, weights_file=path)
    assert torch.equal(model.stem[0].weight, source.stem[0].weight)
    assert model.fc.out_features == 5
    same = build_model(catalogue, "cifar_resnet20", num_classes=10, weights_file=path)
    assert torch.equal(same.fc.weight, source.fc.weight)


class _Exploit:
    def __reduce__(self):
        return (Path("/tmp/harness-pwned").touch, ())


def test_pickle_with_code_is_refused(catalogue, tmp_path):
    path = tmp_path / "evil.pth"
    state = build_model(catalogue, "cifar_resnet20", num_classes=10).state_dict()
    state["extra"] = _Exploit()
    path.write_bytes(pickle.dumps(state))
    with pytest.raises(DataError, match="not a checkpoint of plain tensors"):
        build_model(catalogue, "cifar_resnet20", num_classes=10, weights_file=path)
    assert not Path("/tmp/harness-pwned").exists()


def test_wrong_architecture_truncated_and_missing_files(catalogue, tmp_path):
    path = tmp_path / "r20.pth"
    torch.save(build_model(catalogue, "cifar_resnet20", num_classes=10).state_dict(), path)
    with pytest.raises(DataError, match="does not fit cifar_resnet56: .*missing keys"):
        build_model(catalogue, "cifar_resnet56", num_classes=10, weights_file=path)
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="not a readable PyTorch checkpoint"):
        build_model(catalogue, "cifar_resnet20", num_classes=10, weights_file=truncated)
    with pytest.raises(DataError, match="does not exist"):
        build_model(catalogue, "cifar_resnet20", num_classes=10, weights_file=tmp_path / "nope.pth")
    with pytest.raises(UsageError, match="not both"):
        build_model(catalogue, "resnet18.tv_in1k", num_classes=10, weights_file=path)


def test_flops_follow_two_per_multiply_add(catalogue):
    """Our count at 224 px equals twice torchvision's published multiply-adds for ResNet-18."""
    _, tag = catalogue.backbone("resnet18.tv_in1k")
    model = build_model(catalogue, "resnet18", num_classes=1000)
    assert count_params(model) == tag.num_params
    assert count_flops(model, 224) == pytest.approx(tag.flops, rel=1e-3)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    assert count_flops(linear, 4) == 2 * 48 * 5


DAMAGE = {  # how the file is broken -> what the message must say
    "truncated": "its zip container is incomplete or damaged",
    "no-index": "a zip container without PyTorch's data.pkl index",
    "garbage": "not a readable PyTorch checkpoint",
    "zeros": "neither a zip container nor a pickle",
    "empty": "the file is empty",
    "flipped": "fails its checksum",
    "tensor-bytes": "fails its checksum",  # torch itself would load these silently
    "protocol-4": "saved with pickle protocol 4",
    "protocol-5-objects": "it calls datetime.date",
    "stray-pickle": "a pickle stream that is damaged or not in PyTorch's format",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_pth_is_named_in_words_not_torch_internals(catalogue, tmp_path, damage):
    import datetime
    import zipfile

    good = tmp_path / "good.pth"
    state = build_model(catalogue, "cifar_convnet_xs", num_classes=10).state_dict()
    torch.save(state, good)
    data, bad = good.read_bytes(), tmp_path / "bad.pth"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "no-index":  # a zip with the tensors but without the pickle that indexes them
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
            for item in src.infolist():
                if not item.filename.endswith("data.pkl"):
                    dst.writestr(item, src.read(item))
    elif damage == "garbage":
        bad.write_bytes(bytes(range(256)) * 40)
    elif damage == "zeros":
        bad.write_bytes(bytes(len(data)))
    elif damage == "empty":
        bad.write_bytes(b"")
    elif damage == "flipped":
        bad.write_bytes(data[:100] + bytes(b ^ 0xFF for b in data[100:400]) + data[400:])
    elif damage == "tensor-bytes":
        middle = len(data) // 2
        bad.write_bytes(data[:middle] + bytes(1000) + data[middle + 1000:])
    elif damage == "protocol-4":
        torch.save(state, bad, pickle_protocol=4)
    elif damage == "protocol-5-objects":
        torch.save({**state, "when": datetime.date(2026, 1, 1)}, bad, pickle_protocol=5)
    else:
        bad.write_bytes(pickle.dumps({"a": 1, "b": "two"}, protocol=2))
    with pytest.raises(DataError, match=re.escape(DAMAGE[damage])) as info:
        build_model(catalogue, "cifar_convnet_xs", num_classes=10, weights_file=bad)
    message = str(info.value)
    for internal in ("miniz", "KeyError", "PytorchStreamReader", "central directory", "weights_only", "operand"):
        assert internal not in message, message


def test_a_directory_is_not_a_weights_file(catalogue, tmp_path):
    (tmp_path / "x.pth").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        build_model(catalogue, "cifar_convnet_xs", num_classes=10, weights_file=tmp_path / "x.pth")
