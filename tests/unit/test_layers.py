"""The import layers the README's Layout section describes, read statically from the source.

"Dependencies point one way: cli → select → jobs → onnx, evaluate, train → models, data, predictions → registry;
nothing in registry/ imports harness." Each package below is a unit (``harness.select`` stands for every module
under ``harness/select/``); imports inside functions and under ``TYPE_CHECKING`` count too, since a
lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from helpers import ROOT

# Bottom to top; a unit may import units of its own layer or below. Within a layer, peers point one
# way (checked below as "no cycles").
LAYERS: tuple[tuple[str, ...], ...] = (
    ("registry",),
    # the core every stage uses: the package itself (hookimpl, __version__), context, errors, plugin manager
    ("harness", "harness.errors", "harness.progress", "harness.hookspecs", "harness.plugins", "harness.context",
     "harness.environment", "harness.fingerprint", "harness.output", "harness.track"),
    # library_index: model libraries' names cached per installed version (in harness.data's cache folder);
    # predictions: stored per-image logits and the calibration fitted on them (train saves, evaluate and onnx read)
    ("harness.models", "harness.data", "harness.describe", "harness.library_index", "harness.predictions"),
    ("harness.train", "harness.evaluate", "harness.onnx", "harness.testing"),
    # jobs: trainings that run in a worker (trial) and the zoo built from them; select hands work to them
    ("harness.jobs",),
    ("harness.select",),
    ("harness.report",),
    ("harness.api",),
    ("harness.cli", "harness.__main__"),
)
# Our plugins use the library's lower layers only, like a third-party plugin would.
PLUGINS_MAY_IMPORT = frozenset(("registry", *LAYERS[1], *LAYERS[2]))

# Edges that break the layers today, each with the module that makes it. When one disappears, delete it
# here: the last test fails until then. (The last one, onnx/export.py reading evaluate/calibration.py, went
# when stored predictions and calibration moved below both, to harness/predictions/.)
KNOWN_EXCEPTIONS: dict[tuple[str, str], set[str]] = {}
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The modules an import statement loads (``from a import b`` loads ``a.b`` when that is a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    subs = [f"{source}.{a.name}" for a in node.names if _exists(f"{source}.{a.name}")]
    return [source, *subs]


def _unit(module: str) -> str | None:
    """The layer unit a module of ours belongs to (None for third-party modules)."""
    parts = module.split(".")
    if parts[0] in ("registry", "plugins"):
        return parts[0]
    if parts[0] != "harness":
        return None
    return "harness" if len(parts) == 1 else f"harness.{parts[1]}"


def import_edges() -> dict[tuple[str, str], set[str]]:
    """(importing unit, imported unit) -> the files that import across that edge."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for package in ("harness", "registry", "plugins"):
        for path in sorted((ROOT / package).rglob("*.py")):
            module = _module_name(path)
            source = _unit(module)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                for target in _targets(node, module, path.name == "__init__.py"):
                    unit = _unit(target)
                    if unit is not None and source is not None and unit != source:
                        edges[(source, unit)].add(path.relative_to(ROOT).as_posix())
    return edges


EDGES = import_edges()


def _unknown_units() -> set[str]:
    return {u for edge in EDGES for u in edge if u not in RANK and u != "plugins"}


def test_every_unit_has_a_layer():
    assert not _unknown_units(), "add these to LAYERS (and to the README's Layout) where they belong"


def test_registry_imports_neither_harness_nor_plugins():
    assert not {(a, b): f for (a, b), f in EDGES.items() if a == "registry"}


def test_harness_never_imports_our_plugins():
    # our plugins load through the entry points like anyone's; the core knows none of them by name
    assert not {(a, b): f for (a, b), f in EDGES.items() if a.startswith("harness") and b == "plugins"}


def test_plugins_use_only_the_lower_layers():
    assert not {(a, b): f for (a, b), f in EDGES.items() if a == "plugins" and b not in PLUGINS_MAY_IMPORT}


def test_dependencies_point_down():
    upward = {(a, b): sorted(files - KNOWN_EXCEPTIONS.get((a, b), set())) for (a, b), files in EDGES.items()
              if a in RANK and b in RANK and RANK[b] > RANK[a]}
    assert not {edge: files for edge, files in upward.items() if files}, \
        "a lower layer imports a higher one (see the README's Layout)"


def test_peers_point_one_way():
    allowed = {edge for edge in EDGES if edge not in KNOWN_EXCEPTIONS}
    cycles = sorted((a, b) for a, b in allowed if (b, a) in allowed and a < b)
    assert not cycles, {c: (sorted(EDGES[c]), sorted(EDGES[c[::-1]])) for c in cycles}


def test_known_exceptions_still_exist():
    gone = {edge: sorted(files - EDGES.get(edge, set())) for edge, files in KNOWN_EXCEPTIONS.items()}
    assert not {edge: files for edge, files in gone.items() if files}, \
        "these layer exceptions are fixed: delete them from KNOWN_EXCEPTIONS"


def test_the_edge_reader_sees_lazy_and_relative_imports():
    # a check of the reader itself: zoo's import of train and candidates' import of zoo sit inside functions
    assert "harness/jobs/zoo.py" in EDGES[("harness.jobs", "harness.train")]
    assert "harness/select/candidates.py" in EDGES[("harness.select", "harness.jobs")]
    assert ("harness.select", "harness.train") in EDGES
    assert ("harness.cli", "harness.select") in EDGES
