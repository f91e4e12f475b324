"""The names the README's "Which names are public" section promises exist, and the section lists them:
a rename of a public name fails here, so it gets its deprecation path first."""

from __future__ import annotations

import importlib
import inspect
import re

from helpers import ROOT

PUBLIC = {
    "harness": ("hookimpl", "Context", "DataOptions", "load_plugins", "__version__", "select", "finetune",
                "evaluate", "export", "check_onnx", "bench", "leaderboard", "report", "load_model", "load_onnx",
                "load_images"),
    "registry": ("Backbone", "WeightTag", "Family", "Dataset", "ImageSplit", "Metric", "Task", "Protocol", "Budget",
                 "PluginInfo", "HarnessError", "UsageError", "UnknownNameError", "DataError", "PluginError",
                 "EntryError", "TrainingError", "ExportError", "BenchmarkError", "StoreError", "Catalogue"),
    "harness.models": ("build_model", "replace_head"),
    "harness.models.hub": ("load_hub_state_dict",),
    "harness.data": ("load_split",),
    "harness.testing": ("check_plugin", "check_backbone", "check_dataset", "check_metric", "check_task",
                        "assert_conforms", "summary", "CheckResult", "ConformanceError"),
}


def _section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("### 6. Which names are public", 1)[1].split("\n## ", 1)[0]


def test_every_public_name_exists_and_the_readme_lists_it():
    section = _section()
    for module, names in PUBLIC.items():
        loaded = importlib.import_module(module)
        assert f"`{module}`" in section, module
        for name in names:
            assert hasattr(loaded, name), f"{module}.{name} is public (README) but missing"
            assert re.search(rf"`{re.escape(name)}[`(]", section), f"README's public list lacks {module}.{name}"


def test_public_signatures_keep_their_parameters():
    from harness.data import load_split
    from harness.models import build_model

    assert list(inspect.signature(load_split).parameters)[:4] == ["ctx", "dataset", "split", "image_size"]
    assert list(inspect.signature(build_model).parameters)[:3] == ["catalogue", "name", "num_classes"]
    catalogue_methods = ("backbone", "task", "find")
    table_methods = ("get", "names", "list")
    from registry import Catalogue, Table

    assert all(callable(getattr(Catalogue, m)) for m in catalogue_methods)
    assert all(callable(getattr(Table, m)) for m in table_methods)
