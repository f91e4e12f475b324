"""The conformance kit (harness.testing) passes on built-in entries and the example plugin, and
fails, naming entry, plugin and fix, on a deliberately broken plugin."""

from __future__ import annotations

import sys

import pytest
from helpers import ROOT, make_plugins

import harness
from harness.testing import ConformanceError, assert_conforms, check_backbone, check_dataset, check_metric, check_plugin
from registry import Backbone, Budget, Dataset, ImageSplit, Metric, Protocol, Task


@pytest.fixture(scope="module")
def tiny():
    sys.path.insert(0, str(ROOT / "examples" / "harness-tiny"))
    try:
        import harness_tiny
    finally:
        sys.path.pop(0)
    return make_plugins([harness_tiny])


def test_the_example_plugin_conforms_entry_by_entry(tiny):
    results = assert_conforms(check_plugin(tiny, "harness_tiny", data_dir="unused: generated data"))
    assert {(r.kind, r.name) for r in results} == {("backbone", "tinynet_xs"), ("dataset", "checkers"),
                                                    ("metric", "error_rate"), ("task", "checkers")}
    assert any(r.check == "ONNX export and parity" for r in results)


def test_builtin_small_entries_conform(catalogue, tmp_path):
    from fileformats import write_mnist_raw

    write_mnist_raw(tmp_path, "MNIST")
    assert_conforms([*check_backbone(catalogue, "cifar_resnet8"), *check_backbone(catalogue, "mobilenet_v3_small",
                                                                                  export=False),
                     *check_dataset(catalogue, "mnist", tmp_path),
                     *[r for m in catalogue.metrics.names() for r in check_metric(catalogue, m)]])
    tasks = make_plugins()
    assert_conforms(check_plugin(tasks, tasks.catalogue.tasks.get("cifar10").plugin.name))


class Broken:
    """One mistake of each kind an author makes."""

    @staticmethod
    def build(num_classes, weights):
        from torch import nn

        class Net(nn.Module):  # the head named in the entry ("unused") is not what makes the logits
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                          nn.Linear(8, num_classes))
                self.unused = nn.Linear(8, num_classes)

            def forward(self, x):
                return self.body(x)

        return Net()

    @staticmethod
    def build_wrong_head(num_classes, weights):
        from torch import nn

        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

    @staticmethod
    def load(split, root, download=False, image_size=None):
        import torch

        if not (root / "files").exists():
            raise FileNotFoundError(root / "files")  # should be registry.DataError
        return ImageSplit(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 5]), ("a", "b", "c"))

    @staticmethod
    def nan_metric(logits, targets, num_classes):
        return float("nan")

    @staticmethod
    def backwards_metric(logits, targets, num_classes):
        return float((logits.argmax(1) == targets).float().mean())  # accuracy, declared lower-is-better

    @harness.hookimpl
    def register_backbones(self, register):
        register(Backbone(name="bad_net", builder=Broken.build, head="unused", feature_dim=8, input_size=16))
        register(Backbone(name="bad_head", builder=Broken.build_wrong_head, head="0", input_size=16))

    @harness.hookimpl
    def register_datasets(self, register):
        register(Dataset(name="bad_data", loader=Broken.load, num_classes=3))

    @harness.hookimpl
    def register_metrics(self, register):
        register(Metric(name="nan_metric", kind="quality", higher_is_better=True, unit="x", compute=Broken.nan_metric))
        register(Metric(name="backwards", kind="quality", higher_is_better=False, unit="x",
                        compute=Broken.backwards_metric))

    @harness.hookimpl
    def register_tasks(self, register):
        budgets = {b: Budget(epochs=1) for b in ("quick", "standard", "full")}
        register(Task(name="bad_task", dataset="bad_data", metrics=("params", "nan_metric"),
                      protocol=Protocol(input_size=8, budgets=budgets, augmentation=("hflip",),
                                        candidates=("bad_net", "resnet_18"))))


def test_a_broken_plugin_fails_with_what_to_fix(tmp_path):
    plugins = make_plugins([Broken()])
    (tmp_path / "files").mkdir()
    name = next(e.plugin.name for e in plugins.catalogue.backbones if e.name == "bad_net")
    results = check_plugin(plugins, name, data_dir=tmp_path, export=False)
    failed = {(r.name, r.check): r.detail for r in results if not r.ok}
    assert "no gradient reaches the head 'unused'" in failed[("bad_net", "head and feature_dim")]
    assert "head of 8 classes when asked for 7" in failed[("bad_head", "build")]
    assert "uint8" in failed[("bad_data", "split 'train'")]
    assert "FileNotFoundError" in failed[("bad_data", "missing data is a DataError")]
    assert "returned nan" in failed[("nan_metric", "finite float")]
    assert "higher_is_better=False" in failed[("backwards", "direction (higher_is_better)")]
    task = {k[1]: v for k, v in failed.items() if k[0] == "bad_task"}
    assert "'params' is an efficiency metric" in task["metrics exist, primary is quality"]
    assert "resnet_18" in task["candidates resolve"] and "bad_net" not in task["candidates resolve"]
    with pytest.raises(ConformanceError, match=r"9 of 16 checks failed:\n(.|\n)*bad_net \[Broken\]: head"):
        assert_conforms(results)
    with pytest.raises(ConformanceError, match="no checks ran"):
        assert_conforms(check_plugin(plugins, "no-such-plugin"))


def test_an_unknown_augmentation_is_refused_when_the_task_is_made():
    from registry import EntryError

    budgets = {b: Budget(epochs=1) for b in ("quick", "standard", "full")}
    with pytest.raises(EntryError, match="task 'spin': unknown augmentation 'rotate'; use random_crop, hflip"):
        Task(name="spin", dataset="d", metrics=("accuracy",),
             protocol=Protocol(input_size=8, budgets=budgets, augmentation=("rotate",)))
    budgets["quick"] = Budget(epochs=1, augmentation=("hflip", "blur"))
    with pytest.raises(EntryError, match="'blur'"):
        Task(name="spin", dataset="d", metrics=("accuracy",), protocol=Protocol(input_size=8, budgets=budgets))
