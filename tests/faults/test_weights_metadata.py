"""The metadata inside a harness ``.safetensors`` weights file is checked, never trusted.

Each case takes the weights file of a real trained version, rewrites one metadata value with the
``safetensors`` library (tensors unchanged) and runs it through the CLI and ``harness.load_model``:
a preprocessing that is not an object, a NaN mean or a zero std (NaN probabilities, every image
class 0), a size that would reserve hundreds of GB, a class count or class names that do not match
the head. Each is one ``Error:`` line naming the file and the field, exit 2, before the data loads,
with the store untouched.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faultlib import assert_clean_failure, store_refs

from registry import DataError
from registry.store import ModelStore


def _weights_file(trained: str) -> Path:
    with ModelStore() as store:
        return store.get(trained).artifacts["weights"].path


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def _rewrite(source: Path, target: Path, changes: dict[str, str]) -> Path:
    """``source``'s tensors saved again at ``target`` with metadata values replaced (JSON text, as harness
    writes them)."""
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(source)), str(target), metadata={**_metadata(source), **changes})
    return target


def _preprocess(source: Path, **fields: Any) -> str:
    """The file's recorded preprocessing with ``fields`` replaced, as JSON text (NaN written as NaN)."""
    recorded = json.loads(_metadata(source)["preprocess"])
    return json.dumps({**recorded, **fields})


# (case id, a function of the good file giving the changed metadata, text the error names)
DAMAGE = [
    ("preprocess-not-json", lambda f: {"preprocess": "not json"}, "preprocess is 'not json', not a JSON object"),
    ("preprocess-a-list", lambda f: {"preprocess": "[32, 3]"}, "preprocess is [32, 3], not a JSON object"),
    ("mean-nan", lambda f: {"preprocess": _preprocess(f, mean=[math.nan, 0.5, 0.5])},
     "preprocess.mean is [nan, 0.5, 0.5], not a list of 3 finite numbers"),
    ("std-zero", lambda f: {"preprocess": _preprocess(f, std=[0, 0, 0])},
     "preprocess.std is [0, 0, 0], not a list of 3 finite numbers above 0"),
    ("std-inf", lambda f: {"preprocess": _preprocess(f, std=[math.inf, 0.2, 0.2])}, "preprocess.std is [inf"),
    ("mean-two-values", lambda f: {"preprocess": _preprocess(f, mean=[0.5, 0.5])}, "preprocess.mean is [0.5, 0.5]"),
    ("size-huge", lambda f: {"preprocess": _preprocess(f, input_size=100_000)},
     "preprocess.input_size is 100000, not an integer from 8 to 4096"),
    ("size-zero", lambda f: {"preprocess": _preprocess(f, input_size=0)}, "preprocess.input_size is 0"),
    ("size-text", lambda f: {"preprocess": _preprocess(f, input_size="32")}, "preprocess.input_size is '32'"),
    ("channels-two", lambda f: {"preprocess": _preprocess(f, channels=2)}, "preprocess.channels is 2, not 1 or 3"),
    ("num-classes-other", lambda f: {"num_classes": "7"}, "num_classes is 7, but the weights' head has"),
    ("num-classes-negative", lambda f: {"num_classes": "-1"}, "num_classes is -1, not a positive integer"),
    ("class-names-short", lambda f: {"class_names": '["a"]'}, "class_names has 1 name (['a']), not one per class"),
    ("class-names-object", lambda f: {"class_names": '{"x": 1}'}, "class_names is {'x': 1}, not a list of class"),
    ("class-names-numbers", lambda f: {"class_names": json.dumps(list(range(len(json.loads(
        _metadata(f)["class_names"])))))}, "class_names is [0, 1"),
    ("class-names-repeated", lambda f: {"class_names": json.dumps(["a"] * len(json.loads(
        _metadata(f)["class_names"])))}, "with a name repeated"),
    ("backbone-number", lambda f: {"backbone": "5"}, "backbone is 5, not a backbone name"),
    ("task-number", lambda f: {"task": "5"}, "task is 5, not a task name"),
]


@pytest.fixture
def good(trained: str, tmp_path: Path) -> Path:
    """A copy of the trained version's weights file, outside the store."""
    return _rewrite(_weights_file(trained), tmp_path / "good.safetensors", {})


@pytest.mark.parametrize(("change", "needle"), [case[1:] for case in DAMAGE], ids=[case[0] for case in DAMAGE])
def test_damaged_metadata_is_refused_by_the_cli(run_cli, good, tmp_path, change, needle):
    bad = _rewrite(good, tmp_path / "bad.safetensors", change(good))
    before = store_refs()
    for args in (("evaluate", str(bad), "--task", "synthetic", "--no-save"),
                 ("finetune", str(bad), "--task", "synthetic", "--epochs", "1")):
        result = run_cli(*args)
        assert_clean_failure(result, 2, needle)
        error = next(line for line in result.output.splitlines() if line.startswith("Error: "))
        assert str(bad) in error and "has damaged metadata" in error, error
        assert f"harness registry import cifar_convnet_s {bad}" in error or "backbone is" in error, error
        assert "images at" not in result.output  # refused before the data loads and the plan is printed
    assert store_refs() == before


@pytest.mark.parametrize(("change", "needle"), [case[1:] for case in DAMAGE], ids=[case[0] for case in DAMAGE])
def test_damaged_metadata_is_refused_by_load_model(good, tmp_path, change, needle):
    import harness

    bad = _rewrite(good, tmp_path / "bad.safetensors", change(good))
    with pytest.raises(DataError) as caught:
        harness.load_model(str(bad))
    message = str(caught.value)
    assert needle in message and str(bad) in message and "\n" not in message, message


def test_an_undamaged_file_predicts_and_a_damaged_one_can_be_imported(run_cli, good, tmp_path):
    """The control: the good copy scores and predicts finite probabilities; the refusal's advice
    (import the tensors alone) works on the damaged file, which then predicts the same."""
    import harness

    images = np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    model = harness.load_model(str(good))
    probabilities = model.predict(images)
    assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert len(model.class_names) == probabilities.shape[1]
    assert run_cli("evaluate", str(good), "--task", "synthetic", "--no-save").exit_code == 0

    bad = _rewrite(good, tmp_path / "bad.safetensors", {"preprocess": _preprocess(good, std=[0, 0, 0])})
    imported = run_cli("registry", "import", "cifar_convnet_s", str(bad), "--name", "rescued")
    assert imported.exit_code == 0, imported.output
    assert np.isfinite(harness.load_model("rescued").predict(images)).all()
