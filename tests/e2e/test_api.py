"""The Python API: the example notebook-style script runs from start to end, and its functions
(``harness.select_models``, ``harness.evaluate_model``...) sit beside the subpackages ``harness.select``,
``harness.evaluate`` and ``harness.report`` without touching them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT


def test_api_names_are_callable_and_subpackages_still_import():
    import harness
    import harness.select.run  # the subpackage, imported first
    from harness.api import LoadedModel

    assert callable(harness.select_models) and callable(harness.evaluate_model) and callable(harness.load_model)
    assert callable(harness.write_report) and not callable(harness.select)
    assert harness.select.run.select is not None and LoadedModel.__name__ == "LoadedModel"
    assert set(harness.__all__) >= {"select_models", "finetune", "evaluate_model", "export", "check_onnx", "bench",
                                    "leaderboard", "load_model", "load_onnx", "write_report"}


@pytest.mark.slow
def test_example_notebook_script_runs(tmp_path, subprocess_env):
    env = {**subprocess_env, "HARNESS_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "parity passed: True" in done.stdout and "onnx probabilities: (2, 10) same as torch: True" in done.stdout
    assert (tmp_path / "exports").is_dir()
    assert "report: 2 rows, chosen" in done.stdout
    assert '<table id="leaderboard">' in (tmp_path / "report.html").read_text()


def test_load_images_and_predict_check_their_input(trained):
    import numpy as np

    import harness
    from registry import UsageError

    data = harness.load_images("synthetic", limit=16)
    assert str(data.images.dtype) == "torch.uint8" and tuple(data.images.shape[:2]) == (16, 3)
    assert len(data.labels) == 16 and data.class_names
    model = harness.load_model(trained)
    probabilities = model.predict(data.images)
    assert isinstance(probabilities, np.ndarray) and probabilities.dtype == np.float32
    assert probabilities.shape == (16, len(model.class_names))
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    channels_last = np.ascontiguousarray(data.images.numpy().transpose(0, 2, 3, 1))
    assert np.allclose(model.predict(channels_last.transpose(0, 3, 1, 2)), probabilities, atol=1e-6)  # a view
    for bad, needle in ((data.images.float() / 255, "images must be uint8 pixels 0-255, got float32 (floats in "
                                                    "[0, 1]: pass (images * 255).round() as uint8)"),
                        (data.images[:, 0], "add the channel axis: images[:, None]"),
                        (channels_last, "they look channels-last: images.permute(0, 3, 1, 2)"),
                        (data.images[0, 0, 0], "pass a batch shaped (N, C, H, W)")):
        with pytest.raises(UsageError) as raised:
            model.predict(bad)
        assert needle in str(raised.value)
    # a list of same-sized images is stacked; other lists and types are told what is accepted
    assert np.allclose(model.predict(list(data.images.numpy())), probabilities, atol=1e-6)
    accepted = "pass one numpy array or torch tensor of uint8 pixels shaped (N, C, H, W)"
    for bad, needle in (([data.images[0], data.images[1, :, :8]], "got a list of Tensor of 2 different shapes"),
                        ([[0, 1], [2, 3]], "got a list of list"), ([], "got an empty list"),
                        ("photo.png", "got str"), (None, "got NoneType")):
        with pytest.raises(UsageError) as raised:
            model.predict(bad)
        assert f"images must be an array, {needle}: {accepted}" in str(raised.value), raised.value
    with pytest.raises(UsageError, match="limit must be at least 1"):
        harness.load_images("synthetic", limit=0)


def test_the_deprecated_load_split_form_warns_and_still_loads(builtin_plugins, tmp_path):
    """A plugin's code written against the guide before Context: load_split(catalogue, ..., data_dir=)."""
    from helpers import data_ctx

    from harness.data import load_split

    with pytest.warns(DeprecationWarning, match=r"load_split\(catalogue, dataset, split, data_dir=.*removed in "
                                                r"harness 0\.2; pass a Context"):
        old = load_split(builtin_plugins.catalogue, "synthetic", "test", data_dir=str(tmp_path), download=False)
    new = load_split(data_ctx(builtin_plugins, tmp_path), "synthetic", "test")
    assert old.images.equal(new.images) and old.labels.equal(new.labels)
    # a Context with the old keywords: they win, and the warning names the replacement for a Context
    with pytest.warns(DeprecationWarning, match=r"put them in the context: load_split\(ctx\.replace\(data="
                                                r"DataOptions\(data_dir, download\)\), dataset, split\)") as told:
        load_split(data_ctx(builtin_plugins), "synthetic", "test", data_dir=str(tmp_path))
    assert "Context(plugins" not in str(told[0].message)
    with pytest.warns(DeprecationWarning, match=r"load_split\(plugins, dataset, split, \.\.\.\) is deprecated") as told:
        from_plugins = load_split(builtin_plugins, "synthetic", "test")  # the plugin set itself: works too
    assert from_plugins.labels.equal(new.labels) and len(told) == 1
    with pytest.raises(TypeError, match=r"takes a harness\.Context as its first argument, not str: "
                                        r"load_split\(harness\.Context\(harness\.load_plugins\(\)\)"):
        load_split("synthetic", "synthetic", "test")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current form never warns
        load_split(data_ctx(builtin_plugins, tmp_path), "synthetic", "test")


@pytest.mark.slow
def test_torch_and_onnx_predict_give_the_same_probabilities_and_bad_metadata_is_named(trained, tmp_path, run_cli):
    import numpy as np
    import onnx

    import harness
    from registry import DataError, UsageError

    exported = harness.export(trained, str(tmp_path))
    images = harness.load_images("synthetic", limit=8).images
    from_torch = harness.load_model(trained).predict(images)
    from_onnx = harness.load_onnx(str(exported.info.path))
    assert from_onnx.predict(images.numpy()).dtype == np.float32
    assert np.allclose(from_onnx.predict(images), from_torch, atol=1e-4)
    with pytest.raises(UsageError, match="must be uint8"):
        from_onnx.predict(images.float())
    proto = onnx.load(str(exported.info.path))
    for entry in proto.metadata_props:
        if entry.key == "mean":
            entry.value = "[0.5, 0.5"  # cut off: not JSON, so it reads as a string
    bad = tmp_path / "bad-mean.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(DataError, match="malformed preprocessing metadata: mean is '\\[0.5, 0.5', not a list of 3"):
        harness.load_onnx(str(bad))
    checked = run_cli("check-onnx", str(bad), "--task", "synthetic")
    assert checked.exit_code == 2 and "malformed preprocessing metadata: mean" in checked.stderr
    assert "differs from the model" not in checked.stderr


@pytest.mark.slow
def test_onnx_predict_applies_the_recorded_temperature_only_when_asked_and_checks_it(trained, tmp_path):
    import numpy as np
    import onnx

    import harness
    from registry import DataError, UsageError

    exported = harness.export(trained, str(tmp_path))
    images = harness.load_images("synthetic", limit=8).images

    def with_temperature(value: str | None, name: str) -> str:
        """The exported file with metadata 'temperature' set to ``value`` (JSON text), or without it."""
        proto = onnx.load(str(exported.info.path))
        kept = [(e.key, e.value) for e in proto.metadata_props if e.key != "temperature"]
        del proto.metadata_props[:]
        for key, text in kept + ([("temperature", value)] if value is not None else []):
            proto.metadata_props.add(key=key, value=text)
        path = tmp_path / name
        onnx.save(proto, str(path))
        return str(path)

    scaled = harness.load_onnx(with_temperature("2.0", "t2.onnx"))
    assert scaled.temperature == 2.0
    logits = np.log(scaled.predict(images))  # log-softmax: logits up to a constant per row
    expected = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum(axis=1, keepdims=True)
    assert np.allclose(scaled.predict(images, calibrated=True), expected, atol=1e-5)
    assert (scaled.predict(images, calibrated=True).argmax(1) == scaled.predict(images).argmax(1)).all()
    for value in ("-1.0", "0", "1e-300", "1e308", "\"warm\""):
        with pytest.raises(DataError, match="metadata 'temperature' is .* not a positive number"):
            harness.load_onnx(with_temperature(value, "bad-t.onnx"))
    none = harness.load_onnx(with_temperature(None, "no-t.onnx"))
    assert none.temperature is None
    with pytest.raises(UsageError, match="records no temperature"):
        none.predict(images, calibrated=True)
