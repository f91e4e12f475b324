"""Small CLI conventions: ``show`` prints nested entries as lines (not a Python repr), task files
are written by tomli_w and read back by tomllib unchanged, timm families come from timm itself."""

from __future__ import annotations

import pytest
import tomllib

from harness.data.datatask import TaskSpec, read, save
from harness.data.sources import DataSpec


def test_show_prints_weight_tags_as_lines_not_a_repr(run_cli):
    result = run_cli("show", "resnet18.tv_in1k", "--no-measure")
    assert result.exit_code == 0, result.output
    assert "{'" not in result.stdout and "'tag':" not in result.stdout
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if len(line.split(None, 1)) == 2)
    assert lines["weights[tv_in1k].url"].startswith("https://download.pytorch.org/models/resnet18-")
    assert float(lines["weights[tv_in1k].accuracy.imagenet_top1"]) == pytest.approx(69.758)
    assert "weights[tv_in1k].sha256" not in lines  # unset fields of a tag are left out


def test_task_files_round_trip_awkward_names(tmp_path):
    names = ('say "hi"', "back\\slash", "tab\there", "naïve 東京", "#not-a-comment", "[brackets]")
    spec = TaskSpec(name="odd", data=DataSpec(uri=str(tmp_path / 'a "quoted" folder'), image_column=None),
                    input_size=32, class_names=names, train_images=12, candidates=("cifar_resnet8",))
    path = save(spec, tmp_path)
    parsed = tomllib.loads(path.read_text(encoding="utf-8"))  # valid TOML, read by the standard library
    assert tuple(parsed["class_names"]) == names and "image_column" not in parsed["data"]
    again = read(path)
    assert again.class_names == names and again.data.uri == spec.data.uri and again.candidates == spec.candidates


def test_timm_families_are_timms_own_modules(catalogue):
    pytest.importorskip("timm")
    families = {name: catalogue.backbone(name)[0].family for name in
                ("timm_mobilenetv3_small_100", "timm_swinv2_tiny_window8_256", "timm_tf_efficientnet_b0",
                 "timm_efficientnet_b0", "timm_resnet50")}
    assert families == {"timm_mobilenetv3_small_100": "mobilenetv3",  # not "mobilenetv" (digits stripped)
                        "timm_swinv2_tiny_window8_256": "swin_transformer_v2",  # not "swinv"
                        "timm_tf_efficientnet_b0": "efficientnet",  # not "tf"
                        "timm_efficientnet_b0": "efficientnet", "timm_resnet50": "resnet"}


def test_tables_round_floats_for_people_and_machine_formats_keep_them():
    from harness.output import render

    row = {"val": 0.10000000149011612, "loss": 2.339625835418701, "lr": 1e-05, "n": 3}
    table = render([row], "table")
    assert "0.1 " in table and "2.3396" in table and "1e-05" in table and "0.10000000149" not in table
    assert "0.10000000149011612" in render([row], "csv") and "0.10000000149011612" in render([row], "json")


def test_counts_take_the_noun_in_the_right_number():
    from harness.output import counted

    assert counted(1, "epoch") == "1 epoch" and counted(3, "epoch") == "3 epochs" and counted(0, "epoch") == "0 epochs"
    assert counted(2, "tensor of another shape", "tensors of another shape") == "2 tensors of another shape"
