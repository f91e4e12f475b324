"""``harness zoo build``: a spec's models pretrained and tagged, a second build resumes (builds
nothing), ``--candidates zoo:NAME`` selects among them, and bad specs are refused before training."""

from __future__ import annotations

import json

import pytest
from faultlib import assert_clean_failure

SPEC = """
name = "tiny"
epochs = 1
batch_size = 32
train_limit = 128
[[groups]]
backbones = ["cifar_convnet_xs", "cifar_resnet8"]
method = "supervised"
source = "synthetic:classes=0-4"
[[groups]]
backbones = ["cifar_convnet_xs"]
method = "autoencoder"
source = "synthetic"
"""


@pytest.mark.slow
def test_build_resume_and_select_from_the_zoo(own, tmp_path):
    spec = tmp_path / "zoo.toml"
    spec.write_text(SPEC)
    first = own("zoo", "build", "--spec", str(spec), "--quiet", "--format", "json")
    assert first.exit_code == 0, first.output
    rows = json.loads(first.stdout)
    assert [r["status"] for r in rows] == ["built"] * 3
    assert {(r["backbone"], r["method"]) for r in rows} == {("cifar_convnet_xs", "supervised"),
                                                           ("cifar_resnet8", "supervised"),
                                                           ("cifar_convnet_xs", "autoencoder")}
    again = json.loads(own("zoo", "build", "--spec", str(spec), "--quiet", "--format", "json").stdout)
    assert [r["status"] for r in again] == ["existing"] * 3
    assert [r["model"] for r in again] == [r["model"] for r in rows]
    listed = json.loads(own("zoo", "list", "tiny", "--format", "json").stdout)
    assert len(listed) == 3
    selected = own("select", "--task", "synthetic:classes=5-9,per_class=30", "--candidates", "zoo:tiny",
                   "--epochs", "1", "--format", "json")
    assert selected.exit_code == 0, selected.output
    assert {r["candidate"] for r in json.loads(selected.stdout)["rows"]} == {r["model"] for r in rows}


@pytest.mark.parametrize("text,needle", [
    (SPEC.replace("cifar_resnet8", "cifar_resnet9"), "did you mean"),
    (SPEC.replace('method = "autoencoder"', 'method = "simclr"'), "method 'simclr'"),
    (SPEC.replace('source = "synthetic"', 'source = "synthetc"'), "did you mean 'synthetic'"),
    ('name = "x"\n', "at least one [[groups]]"),
    ("name = ", "cannot read zoo spec"),
])
def test_bad_specs_are_refused_before_training(own, tmp_path, text, needle):
    spec = tmp_path / "zoo.toml"
    spec.write_text(text)
    assert_clean_failure(own("zoo", "build", "--spec", str(spec)), 2, needle)


def test_unknown_zoo_as_candidates(own):
    assert_clean_failure(own("select", "--task", "synthetic", "--candidates", "zoo:nothing"), 2, "no models in zoo")
