"""Listing never imports a model library: ``harness plugins``, ``list backbones PATTERN`` and ``show NAME
--no-measure`` read torchvision's and timm's names and metadata from indexes cached per installed
version (:mod:`harness.library_index`). Asserted on the modules a real CLI process imported, not on
time (``benchmarks/startup.py`` prints the times). The index is rebuilt when the installed version
changes and when its file is damaged."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_plugins

HEAVY = ("torch", "torchvision", "timm", "onnx", "onnxruntime", "numpy", "scipy", "PIL")
"""What listing must not import (torch alone is ~3 s and ~600 MB here)."""

RUNNER = f"""
import json, sys
from harness.cli import cli
report, args = sys.argv[1], sys.argv[2:]
try:
    cli.main(args, prog_name="harness")
    code = 0
except SystemExit as exc:
    code = exc.code or 0
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
with open(report, "w") as f:
    json.dump({{"exit": code, "heavy": heavy}}, f)
"""
"""Runs the CLI in a fresh process, then writes its exit code and which HEAVY modules it imported."""

HAS_TIMM = importlib.util.find_spec("timm") is not None
COMMANDS = [
    (["plugins"], ["plugins.torchvision_backbones"]),
    (["list", "backbones", "cifar*"], ["cifar_resnet20"]),
    (["list", "backbones", "resnet*"], ["resnet18", "resnet50"]),
    (["list", "backbones", "*"], ["resnet18", "cifar_resnet20", *(["timm_resnet18"] if HAS_TIMM else [])]),
    (["list", "backbones", "*.tv_in1k"], ["resnet18.tv_in1k"]),
    (["show", "resnet18.tv_in1k", "--no-measure"], ["resnet18-f37072fd.pth"]),
    (["show", "cifar10", "--no-measure"], ["cifar10"]),
]
if HAS_TIMM:
    COMMANDS += [(["list", "backbones", "timm_*"], ["timm_resnet18"]),
                 (["list", "backbones", "timm/resnet18*", "--tags"], ["timm_resnet18.a1_in1k"]),
                 (["show", "timm_resnet18.a1_in1k", "--no-measure"], ["timm/resnet18.a1_in1k"])]


def _indexes_built() -> None:
    """Build the shared indexes in this process (imported here once, never in the CLI processes)."""
    from plugins import timm_backbones, torchvision_backbones

    torchvision_backbones.load_index()
    if HAS_TIMM:
        timm_backbones._index(importlib.metadata.version("timm"))


@pytest.mark.parametrize(("args", "expected"), COMMANDS, ids=[" ".join(a) for a, _ in COMMANDS])
def test_listing_imports_no_model_library(args: list[str], expected: list[str], tmp_path: Path) -> None:
    _indexes_built()
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-c", RUNNER, str(report), *args, "--format", "json"],
                          capture_output=True, text=True)
    result = json.loads(report.read_text())
    assert result["exit"] == 0, done.stderr
    for text in expected:  # the command really listed what the indexes hold
        assert text in done.stdout, f"{text!r} missing from the output of {args}"
    assert result["heavy"] == [], f"harness {' '.join(args)} imported {result['heavy']}"


def test_a_new_installed_version_gets_its_own_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upgrading torchvision (a distribution of another version first on sys.path) writes a new index;
    the version is read from the distribution's metadata, as the CLI reads it."""
    import torchvision

    from harness.library_index import installed_version
    from plugins import torchvision_backbones as tv

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    version = installed_version("torchvision")
    assert version is not None and torchvision.__version__.startswith(version)
    names = [b.name for b in tv.load_index()]
    folder = tmp_path / "cache" / "torchvision"
    assert "resnet18" in names and (folder / f"index-{version}-v{tv.INDEX_FORMAT}.json").is_file()

    site = tmp_path / "site"
    (site / "torchvision-99.0.dist-info").mkdir(parents=True)
    (site / "torchvision-99.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: torchvision\n"
                                                                   "Version: 99.0\n")
    monkeypatch.syspath_prepend(str(site))
    assert installed_version("torchvision") == "99.0"
    assert [b.name for b in tv.load_index()] == names
    assert sorted(p.name for p in folder.iterdir()) == \
        [f"index-{version}-v{tv.INDEX_FORMAT}.json", f"index-99.0-v{tv.INDEX_FORMAT}.json"]


@pytest.mark.parametrize("damage", [b'{"torchvision": "0.2', b"\x00\xff garbage", b'{"models": [{"name": 1}]}',
                                    b'{"torchvision": "x", "models": [{"name": "Bad Name"}]}', b"[]",
                                    b'{"torchvision": "x", "models": []}'],
                         ids=["cut-short", "binary", "wrong-shape", "invalid-entry", "a-list", "no-models"])
def test_a_damaged_index_is_rebuilt_not_a_crash(damage: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                run_cli) -> None:
    from harness.library_index import index_path, installed_version
    from plugins import torchvision_backbones as tv

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    path = index_path("torchvision", str(installed_version("torchvision")), tv.INDEX_FORMAT)
    path.parent.mkdir(parents=True)
    path.write_bytes(damage)
    result = run_cli("list", "backbones", "resnet1*", "--format", "json", plugins=make_plugins())
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["resnet101", "resnet152", "resnet18"]
    assert len(json.loads(path.read_text())["models"]) == len(tv.load_index()) >= 80
