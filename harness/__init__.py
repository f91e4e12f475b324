"""harness: a plugin-based model registry and evaluation harness for image classification.

Plugin authors need only :data:`hookimpl` from here and the entry types from ``registry``.
"""

from __future__ import annotations

import importlib.metadata

import pluggy

hookimpl = pluggy.HookimplMarker("harness")
"""Marker for hook implementations: ``@harness.hookimpl def register_backbones(register): ...``"""

DISTRIBUTION = "imgcls-harness"

try:
    __version__ = importlib.metadata.version(DISTRIBUTION)
except importlib.metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"

__all__ = ["DISTRIBUTION", "__version__", "hookimpl"]
