"""The records the model store returns: a version and its artifact files."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Artifact:
    role: str
    sha256: str
    size: int
    path: Path
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version (immutable apart from metrics, tags and aliases)."""

    id: int
    name: str
    version: int
    backbone: str
    kind: str
    parent_id: int | None
    parent_ref: str | None
    task: str | None
    dataset: str | None
    num_classes: int | None
    class_names: tuple[str, ...] | None
    recipe: Mapping[str, Any]
    metrics: Mapping[str, Any]
    environment: Mapping[str, Any]
    seed: int | None
    device: str | None
    created_at: float
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    artifacts: Mapping[str, Artifact] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "name": self.name, "version": self.version, "backbone": self.backbone,
            "kind": self.kind, "parent": self.parent_ref, "task": self.task, "dataset": self.dataset,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names) if self.class_names else None,
            "aliases": list(self.aliases), "tags": dict(self.tags), "recipe": dict(self.recipe),
            "metrics": dict(self.metrics), "environment": dict(self.environment), "seed": self.seed,
            "device": self.device,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
            "artifacts": {r: {"sha256": a.sha256, "size": a.size, "path": str(a.path), **a.meta}
                          for r, a in self.artifacts.items()},
        }


@dataclass(frozen=True)
class AliasMove:
    """One move of ``name:alias``: from which version to which (None: unset), when, why (the
    evidence a gate recorded) and the command that made it."""

    id: int
    name: str
    alias: str
    from_ref: str | None
    to_ref: str | None
    at: float
    evidence: dict[str, Any]
    command: str | None

    def as_dict(self) -> dict[str, Any]:
        import datetime

        when = datetime.datetime.fromtimestamp(self.at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"move": self.id, "alias": f"{self.name}:{self.alias}", "from": self.from_ref, "to": self.to_ref,
                "at": when, "command": self.command, "evidence": self.evidence}
