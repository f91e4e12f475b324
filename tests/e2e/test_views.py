"""Views of datasets and tasks (``NAME:classes=...,per_class=N``): class subsets re-indexed with
their names, seeded stratified label budgets on train only, the whole test split of the chosen
classes, on registered tasks, --data sources and pretraining sources; bad views refused."""

from __future__ import annotations

import json

import pytest
from faultlib import assert_clean_failure
from fileformats import write_photos
from helpers import make_plugins

from harness.data.views import View, split_view


def test_parse_views():
    assert split_view("fashion-mnist") == ("fashion-mnist", None)
    assert split_view("fashion-mnist:classes=0-4,per_class=50") == ("fashion-mnist", View(("0-4",), 50, 0))
    assert split_view("hf:user/set:per_class=3") == ("hf:user/set", View(None, 3, 0))
    assert split_view("/data/photos:classes=cat+dog,seed=2") == ("/data/photos", View(("cat", "dog"), None, 2))
    assert View(("0-4",), 50).text() == "classes=0-4,per_class=50"


def test_view_of_a_registered_task(tmp_path):
    from harness.context import Context
    from harness.data.datatask import resolve
    from harness.data.splits import load_task_data

    with Context(make_plugins(), home=tmp_path / "home", quiet=True) as ctx:
        name = resolve(ctx, "synthetic:classes=2-4+class_9,per_class=20,seed=3", None)
        assert name == "synthetic--classes-2-4-class-9-per-class-20-seed-3"
        task = ctx.catalogue.task(name)
        data = load_task_data(ctx, task, image_size=32, val_fraction=0.0)
        assert data.class_names == ("class_2", "class_3", "class_4", "class_9") and data.num_classes == 4
        assert sorted(data.train.labels.tolist()) == sorted([0, 1, 2, 3] * 20)  # 20 per class, re-indexed
        full = load_task_data(ctx, ctx.catalogue.task("synthetic"), image_size=32, val_fraction=0.0)
        wanted = sum(int((full.test.labels == k).sum()) for k in (2, 3, 4, 9))
        assert len(data.test) == wanted  # every test image of the chosen classes
        again = load_task_data(ctx, task, image_size=32, val_fraction=0.0)
        assert again.train.images.equal(data.train.images)  # seeded
        other = resolve(ctx, "synthetic:classes=2-4+class_9,per_class=20,seed=4", None)
        other_data = load_task_data(ctx, ctx.catalogue.task(other), image_size=32, val_fraction=0.0)
        assert not other_data.train.images.equal(data.train.images)


def test_views_from_the_command_line(own, tmp_path):
    photos = write_photos(tmp_path / "photos", per_class=15)
    tuned = own("finetune", "cifar_convnet_xs", "--data", f"{photos}:per_class=5", "--epochs", "1",
                "--batch-size", "4", "--format", "json")
    assert tuned.exit_code == 0, tuned.output
    assert json.loads(tuned.stdout)["model"] == "photos--per-class-5@1"
    recorded = json.loads(own("registry", "show", "photos--per-class-5@1", "--format", "json").stdout)
    assert recorded["recipe"]["view"] == {"of": "photos", "view": "per_class=5"}
    pre = own("pretrain", "cifar_convnet_xs", "--dataset", "synthetic:classes=0-4", "--epochs", "1",
              "--batch-size", "32", "--format", "json")
    assert pre.exit_code == 0, pre.output
    assert "synthetic--classes-0-4" in json.loads(pre.stdout)["model"]
    shown = json.loads(own("show", "synthetic:classes=0-4", "--format", "json").stdout)
    assert {r["kind"] for r in shown} == {"dataset", "task"} and shown[0]["num_classes"] == 5
    selected = own("select", "--task", "synthetic:classes=0-1,per_class=30", "--candidates", "cifar_convnet_xs",
                   "--epochs", "1", "--format", "json")
    assert selected.exit_code == 0, selected.output
    assert json.loads(selected.stdout)["task"] == "synthetic--classes-0-1-per-class-30"


@pytest.mark.parametrize("bad,needle", [
    ("synthetic:classes=0-42", "classes 0-9"),
    ("synthetic:classes=zebra", "no class 'zebra'"),
    ("synthetic:classes=3", "at least 2 classes"),
    ("synthetic:per_class=0", "at least 1"),
    ("synthetic:perclass=5", "bad view"),
    ("synthetic:per_class=many", "whole numbers"),
])
def test_bad_views_are_refused_before_work(own, bad, needle):
    assert_clean_failure(own("finetune", "cifar_convnet_xs", "--task", bad, "--epochs", "1"), 2, needle)
