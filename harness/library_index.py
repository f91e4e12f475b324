"""A model library's catalogue as a JSON index, cached per installed version of that library.

Importing torchvision or timm costs seconds and hundreds of MB; reading what they hold does not
need to. A plugin builds the index once by importing its library, and later processes read the
file: ``$HARNESS_CACHE/<library>/index-<version>-v<format>.json``. The version is the installed
distribution's, read from its metadata (:func:`installed_version`) without importing it, so
upgrading the library writes a new index, and bumping ``format`` (when the plugin changes what
it stores) does too. A missing, damaged or unparsable file is rebuilt, never a crash; a cache
folder that cannot be written only costs the next command the same import.

The built-in torchvision and timm plugins use this; a third-party plugin over a heavy library can
call :func:`cached_index` the same way.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")

DAMAGED = (ValueError, KeyError, TypeError, AttributeError, IndexError)
"""What parsing a damaged or foreign file raises (JSON errors and EntryError are ValueErrors)."""


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` from its metadata (the package is not imported)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def index_path(library: str, version: str, format_version: int) -> Path:
    """Where the index of ``library`` ``version`` (stored in format ``format_version``) is kept."""
    from harness.data.cache import harness_cache_dir

    return harness_cache_dir() / library / f"index-{version}-v{format_version}.json"


def cached_index(library: str, version: str, build: Callable[[], Any], parse: Callable[[Any], R], *,
                 format_version: int) -> R:
    """``parse`` of the cached index of ``library`` ``version``; when the file is missing or ``parse``
    fails on it, ``parse(build())`` (``build`` imports the library), then written for next time."""
    path = index_path(library, version, format_version)
    try:
        return parse(json.loads(path.read_bytes()))
    except OSError:
        pass  # not built yet for this version (or unreadable)
    except DAMAGED:
        pass  # cut short by a full disk, edited, or written by other code: rebuild it
    data = build()
    parsed = parse(data)  # a fresh index that does not parse is the plugin's bug: let it raise
    _write(path, data)
    return parsed


def _write(path: Path, data: Any) -> None:
    from registry.files import atomic_write_bytes

    try:
        atomic_write_bytes(path, json.dumps(data).encode())
    except OSError:
        pass  # a read-only or full cache only costs the next command the same import
