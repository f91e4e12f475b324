"""Shared fixtures: a fresh plugin set with only the plugins a test names, and a CLI runner."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_MODULES = ("plugins.torchvision_backbones", "plugins.cifar_nets", "plugins.datasets",
                   "plugins.metrics", "plugins.tasks")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the developer's caches: data, torch hub and harness home live in tmp."""
    base = tmp_path_factory.mktemp("env")
    monkeypatch.setenv("HARNESS_DATA", str(base / "data"))
    monkeypatch.setenv("HARNESS_HOME", str(base / "home"))
    monkeypatch.setenv("TORCH_HOME", str(base / "torch"))
    for name in ("HARNESS_LOAD_PLUGINS", "HARNESS_STRICT_PLUGINS", "HARNESS_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)


def make_plugins(modules: Iterable[object] = (), *, builtins: bool = True, strict: bool = False,
                 reports: list[str] | None = None):
    """Plugins with the built-ins (imported by module, not entry points) plus ``modules``."""
    import importlib

    from harness.plugins import load_plugins

    chosen = [importlib.import_module(m) for m in BUILTIN_MODULES] if builtins else []
    sink = reports.append if reports is not None else (lambda message: None)
    return load_plugins([*chosen, *modules], entry_points=False, strict=strict, report=sink)


@pytest.fixture(scope="session")
def builtin_plugins():
    return make_plugins()


@pytest.fixture(scope="session")
def catalogue(builtin_plugins):
    return builtin_plugins.catalogue


@pytest.fixture
def run_cli(builtin_plugins) -> Callable[..., object]:
    """Invoke the CLI in-process with the built-in plugins; returns click's Result."""
    from harness.cli import cli

    def run(*args: str, plugins=None):
        return CliRunner().invoke(cli, list(args), obj=plugins or builtin_plugins, catch_exceptions=False)

    return run


def harness_exe() -> list[str]:
    """The installed ``harness`` console script of this interpreter's environment."""
    exe = Path(sys.executable).with_name("harness")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "harness"]


@pytest.fixture
def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env
