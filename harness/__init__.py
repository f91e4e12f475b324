"""harness: a plugin-based model registry and evaluation harness for image classification.

Plugin authors need only :data:`hookimpl` from here and the entry types from ``registry``.
Library users call the Python API (:mod:`harness.api`: ``harness.select_models(task=...)``,
``harness.finetune``, ``harness.evaluate_model``, ``harness.export``, ``harness.check_onnx``,
``harness.bench``, ``harness.leaderboard``, ``harness.write_report``, ``harness.load_model``,
``harness.load_onnx``, ``harness.load_images``) or start
from :class:`harness.Context`; everything is imported on first use, so ``import harness`` stays as
cheap as the CLI's ``--version``. ``harness.select``, ``harness.evaluate`` and ``harness.report`` are
subpackages, plain modules: the API's functions of those commands are the three named above.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

import pluggy

# Idle OpenMP threads spin briefly, then sleep: with GNU OpenMP's default spin count, torch's
# idle threads burn the time slices other threads need, and on a 2-core machine busy with other
# work training ran 2-15x slower. 10,000 spins: 0.88-1.03x the default's speed on a quiet
# machine and 1.9-4.4x it beside two busy processes; OMP_WAIT_POLICY=PASSIVE: 0.78-0.92x and
# 1.9-7.7x (benchmarks/threads_contention.py, two runs; noisy). Read when torch loads, so it must
# come first; an explicit setting in the environment wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

hookimpl = pluggy.HookimplMarker("harness")
"""Marker for hook implementations: ``@harness.hookimpl def register_backbones(register): ...``"""

DISTRIBUTION = "imgcls-harness"

try:
    __version__ = importlib.metadata.version(DISTRIBUTION)
except importlib.metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"

_LAZY = {"Context": "harness.context", "DataOptions": "harness.context", "load_plugins": "harness.plugins",
         **{name: "harness.api" for name in ("select_models", "finetune", "evaluate_model", "export", "check_onnx",
                                             "bench", "leaderboard", "write_report", "load_model", "load_onnx",
                                             "load_images")}}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if not name.startswith("__"):  # a submodule (harness.errors after a plain import harness), imported on use
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = ["DISTRIBUTION", "Context", "DataOptions", "__version__", "bench", "check_onnx", "evaluate_model", "export",
           "finetune", "hookimpl", "leaderboard", "load_images", "load_model", "load_onnx", "load_plugins",
           "select_models", "write_report"]
