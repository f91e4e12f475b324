"""The names the README's "Which names are public" section promises exist, and the section lists them:
a rename of a public name fails here, so it gets its deprecation path first."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import types

from helpers import ROOT

PUBLIC = {
    "harness": ("hookimpl", "Context", "DataOptions", "load_plugins", "__version__", "select_models", "finetune",
                "evaluate_model", "export", "check_onnx", "bench", "leaderboard", "write_report", "load_model",
                "load_onnx", "load_images"),
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


def test_the_api_names_are_functions_and_the_subpackages_plain_modules():
    """Issue 26: no callable-module patch. ``harness.select``/``evaluate``/``report`` are only the
    subpackages; the API's functions of those commands have their own top-level names."""
    import harness
    import harness.api
    import harness.evaluate
    import harness.report
    import harness.select

    for package in (harness.select, harness.evaluate, harness.report):
        assert type(package) is types.ModuleType, f"{package.__name__} is a {type(package)}, not a plain module"
        assert not callable(package)
    assert harness.select_models is harness.api.select_models is harness.api.select
    assert harness.evaluate_model is harness.api.evaluate_model is harness.api.evaluate
    assert harness.write_report is harness.api.write_report is harness.api.report
    assert {"select_models", "evaluate_model", "write_report"} <= set(harness.__all__)
    assert not {"select", "evaluate", "report"} & set(harness.__all__)


def test_import_harness_loads_neither_the_api_nor_torch():
    code = ("import sys, harness; harness.__all__; "
            "print(sorted(m for m in ('torch', 'harness.api', 'harness.select') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_submodules_are_reachable_after_a_plain_import():
    import subprocess
    import sys

    code = ("import harness\n"
            "assert harness.errors.UsageError.__name__ == 'UsageError'\n"
            "try:\n    harness.no_such_thing\nexcept AttributeError:\n    print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"
