"""Real data: Debian's dataset-fashion-mnist, read through the real loader (CI installs it)."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import data_ctx

from harness.data import load_split
from plugins.dataset_files import DEBIAN_FASHION_MNIST

pytestmark = pytest.mark.realdata

# CI sets HARNESS_REQUIRE_REAL_DATA=1 so that a missing package fails instead of skipping.
needs_debian = pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file()
    and os.environ.get("HARNESS_REQUIRE_REAL_DATA") != "1",
    reason="apt-get install dataset-fashion-mnist",
)


@needs_debian
def test_real_fashion_mnist_loads_both_splits(builtin_plugins, tmp_path):
    test = load_split(data_ctx(builtin_plugins, tmp_path), "fashion-mnist", "test")
    assert test.images.shape == (10_000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert test.class_names[0] == "T-shirt/top" and test.class_names[9] == "Ankle boot"
    train = load_split(data_ctx(builtin_plugins, tmp_path), "fashion-mnist", "train")
    assert train.images.shape == (60_000, 1, 28, 28)
    # real images, not noise: mean intensity of Fashion-MNIST is about 0.286
    assert abs(train.images.float().mean().item() / 255 - 0.286) < 0.01


@pytest.mark.slow
@needs_debian
def test_real_fashion_mnist_quick_finetune_is_well_above_chance(builtin_plugins, tmp_path):
    """The quick budget on real data: chance is 0.10; the measured figure for cifar_convnet_xs is 0.871."""
    from harness.context import Context, DataOptions
    from harness.train.finetune import finetune
    from harness.train.recipe import recipe_for

    task = builtin_plugins.catalogue.tasks.get("fashion-mnist")
    with Context(builtin_plugins, home=tmp_path / "home", data=DataOptions(str(tmp_path / "data")),
                 quiet=True) as ctx:
        result = finetune(ctx, "cifar_convnet_xs", "fashion-mnist", recipe_for(task, "quick"))
        assert result.test.metrics["accuracy"] >= 0.85
        assert result.version.metrics["test"]["accuracy"] == result.test.metrics["accuracy"]
        assert result.test.samples == 10_000  # the whole test split at every budget
        sets = result.version.metrics["eval_sets"]
        assert (sets["val"]["n"], sets["val"]["of"], sets["test"]["n"]) == (6000, 60_000, 10_000)
