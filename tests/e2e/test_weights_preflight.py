"""Pretrained weights that are neither cached nor downloadable are reported before any data loads;
``HF_HUB_OFFLINE=1`` and ``HARNESS_OFFLINE=1`` are honoured without touching the network; messages
link the file to fetch (the Hub's resolve URL), not a repository page."""

from __future__ import annotations

import pytest

pytest.importorskip("timm")

TAG = "timm_test_resnet.r160_in1k"
FILE_URL = "https://huggingface.co/timm/test_resnet.r160_in1k/resolve/main/model.safetensors"


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_finetune_reports_missing_hub_weights_before_the_data(run_cli, empty_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # cifar10 is not in the (empty) data folder either: the weights must be what is reported, first
    result = run_cli("finetune", TAG, "--task", "cifar10", "--epochs", "1")
    assert result.exit_code == 2, result.output
    assert "HF_HUB_OFFLINE=1 forbids downloading" in result.output and FILE_URL in result.output
    assert str(empty_hub / "models--timm--test_resnet.r160_in1k") in result.output
    assert "cifar" not in result.output.split("Error:", 1)[1].split("place the file")[0]  # no data error
    assert "Traceback" not in result.output


def test_select_honours_hf_hub_offline_without_probing(ctx, empty_hub, monkeypatch):
    from harness.select.candidates import check_available

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = check_available(ctx, TAG, offline=False)
    assert not found.available and found.reason and "HF_HUB_OFFLINE=1" in found.reason
    assert found.place is not None and found.place.startswith(FILE_URL + " -> ")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    found = check_available(ctx, "resnet18.tv_in1k", offline=False)  # harness's own switch covers torchvision's
    assert not found.available and found.reason and "HARNESS_OFFLINE=1" in found.reason
    assert found.place is not None and found.place.startswith("https://download.pytorch.org/models/resnet18-")


def test_select_offline_names_the_file_to_place(run_cli, empty_hub):
    result = run_cli("select", "--task", "synthetic", "--candidates", f"{TAG},cifar_convnet_xs", "--offline",
                     "--epochs", "1")
    assert result.exit_code == 2, result.output
    assert f"{TAG}: place {FILE_URL} -> " in result.output
    assert "huggingface.co/timm/test_resnet.r160_in1k " not in result.output  # not the repository page
