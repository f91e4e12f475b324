"""Helpers tests import (fixtures live in conftest.py): the repository root, plugin sets with only
the plugins a test names, and the installed console script."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_MODULES = ("plugins.torchvision_backbones", "plugins.cifar_nets", "plugins.datasets",
                   "plugins.metrics", "plugins.tasks", "plugins.saved_tasks", "plugins.track_mlflow",
                   "plugins.track_tensorboard", "plugins.timm_backbones")


def make_plugins(modules: Iterable[object] = (), *, builtins: bool = True, strict: bool = False,
                 reports: list[str] | None = None, without: Iterable[str] = ()):
    """Plugins with the built-ins (imported by module, not entry points, less ``without``) plus ``modules``."""
    import importlib

    from harness.plugins import load_plugins

    chosen = [importlib.import_module(m) for m in BUILTIN_MODULES if m not in without] if builtins else []
    sink = reports.append if reports is not None else (lambda message: None)
    return load_plugins([*chosen, *modules], entry_points=False, strict=strict, report=sink)


def harness_exe() -> list[str]:
    """The installed ``harness`` console script of this interpreter's environment."""
    exe = Path(sys.executable).with_name("harness")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "harness"]


def data_ctx(plugins, data_dir=None, download: bool = False):
    """A quiet Context reading data from ``data_dir`` (default: ``$HARNESS_DATA``)."""
    from harness.context import Context, DataOptions

    return Context(plugins, data=DataOptions(None if data_dir is None else str(data_dir), download), quiet=True)


def _build_code_net(num_classes: int, weights: str | None):
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, num_classes))


class CodeNetPlugin:
    """A plugin passed in code (not an entry point), as a notebook or a plugin's own tests do."""

    def register_backbones(self, register):
        from registry import Backbone

        register(Backbone(name="code_net", builder=_build_code_net, head="2", input_size=8))


def _mark_hooks() -> None:
    import harness

    CodeNetPlugin.register_backbones = harness.hookimpl(CodeNetPlugin.register_backbones)


_mark_hooks()
CODE_PLUGIN = CodeNetPlugin()
