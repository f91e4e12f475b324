"""What each entry point imports: the light commands never pay for torch, and every third-party
module the code imports is a declared dependency (or an extra)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys

import pytest
from helpers import ROOT

HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "numpy", "scipy", "matplotlib")
PROBE = """
import json, sys
from harness.cli import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)), file=sys.stderr)
"""


# 'harness plugins', 'list backbones' and 'show': tests/e2e/test_fast_listing.py (they read library indexes)
@pytest.mark.parametrize("args", [["--version"], ["--help"], ["list", "tasks"], ["list", "metrics"],
                                  ["plugins", "--help"], ["registry", "list"]])
def test_light_commands_import_no_heavy_library(args):
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []


def _imported_top_level(folder: str) -> set[str]:
    names = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_declared_dependencies_match_imports():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    extras = set().union(*(_requirement_names(v) for k, v in project["optional-dependencies"].items() if k != "dev"))
    ours = {"harness", "registry", "plugins"}
    imported = set()
    for folder in ours:
        imported |= _imported_top_level(folder)
    third_party = {m for m in imported - ours if m not in sys.stdlib_module_names and m != "__future__"}
    by_module = importlib.metadata.packages_distributions()
    # a module may come from several distributions (mlflow from mlflow, mlflow-skinny, ...): one declared is enough
    dists = {m: {d.lower().replace("_", "-") for d in by_module.get(m, [m])} for m in third_party}
    undeclared = {m for m, names in dists.items() if not names & (core | extras)}
    assert undeclared == set(), "imported but not declared"
    used = {d for names in dists.values() for d in names}
    runtime_only = {"onnxscript"}  # torch.onnx's dynamo exporter imports it
    assert core - used - runtime_only == set(), "declared but never imported"
