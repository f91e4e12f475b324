"""Content fingerprints: short, stable hashes of what a result depends on.

A training run's checkpoint folder and a select row's cache key are both fingerprints of JSON
data (recipe, preprocessing, weights' sha256, data hash, library versions, device, seed): equal
inputs give the same key in any process, and any change gives another.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def fingerprint(*parts: Any) -> str:
    """16 hex digits of the sha256 of ``parts`` as canonical JSON."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
