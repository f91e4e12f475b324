"""The conformance kit (harness.testing) passes on built-in entries and the example plugin, and
fails, naming entry, plugin and fix, on a deliberately broken plugin."""

from __future__ import annotations

import json
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
    assert "declares head '0', a Conv2d of 8 outputs" in failed[("bad_head", "build")]
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


class Sneaky:
    """Mistakes the kit used to let through or misname (issue 27): a loader that ignores its split, and
    a head= naming a hidden Linear layer instead of the classifier."""

    @staticmethod
    def build(num_classes, weights):
        from torch import nn

        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, num_classes))

    @staticmethod
    def load(split, root, download=False, image_size=None):
        import torch

        gen = torch.Generator().manual_seed(0)  # the same images whatever the split: the bug
        n = 40 if split == "train" else 20
        images = torch.randint(0, 256, (40, 3, 8, 8), generator=gen, dtype=torch.uint8)[:n]
        return ImageSplit(images, torch.arange(n) % 2, ("a", "b"))

    @harness.hookimpl
    def register_backbones(self, register):
        register(Backbone(name="hidden_head", builder=Sneaky.build, head="1", input_size=8))

    @harness.hookimpl
    def register_datasets(self, register):
        register(Dataset(name="same_split", loader=Sneaky.load, num_classes=2))


def test_a_loader_that_returns_the_train_images_for_test_fails(tmp_path):
    catalogue = make_plugins([Sneaky()]).catalogue
    results = {r.check: r for r in check_dataset(catalogue, "same_split", tmp_path)}
    same = results["splits hold different images"]
    assert not same.ok and "100% of the 'test' images are also in 'train'" in same.detail
    assert all(r.ok for check, r in results.items() if check != "splits hold different images")


def test_real_splits_pass_the_split_check(catalogue, tmp_path):
    from fileformats import write_mnist_raw

    write_mnist_raw(tmp_path, "MNIST")
    results = {r.check: r for r in check_dataset(catalogue, "mnist", tmp_path)}
    assert results["splits hold different images"].ok, results["splits hold different images"].detail


def test_a_head_on_the_wrong_linear_blames_the_head_not_the_builder():
    catalogue = make_plugins([Sneaky()]).catalogue
    results = {r.check: r for r in check_backbone(catalogue, "hidden_head", export=False)}
    detail = results["build"].detail
    assert not results["build"].ok and "declares head '1', a Linear of 16 outputs" in detail
    assert "set head='3'" in detail and "builder" not in detail


def test_datasets_without_a_data_folder_are_skipped_not_passed(tiny, run_cli):
    results = check_plugin(tiny, "harness_tiny", export=False)
    (skipped,) = [r for r in results if r.kind == "dataset"]
    assert skipped.skipped and skipped.status == "skipped" and skipped.as_dict()["status"] == "skipped"
    from harness.testing import summary

    assert summary(results) == f"{len(results) - 1} of {len(results) - 1} checks passed, 1 skipped"
    assert_conforms(results)  # a skip is not a failure
    shown = run_cli("plugins", "check", "harness_tiny", "--no-export", "--format", "json", plugins=tiny)
    assert shown.exit_code == 0, shown.output
    assert f"{len(results) - 1} of {len(results) - 1} checks passed, 1 skipped" in shown.stderr
    assert "skipped" in {row["status"] for row in json.loads(shown.stdout)}
    with pytest.raises(ConformanceError, match="every check was skipped"):
        assert_conforms([skipped])
