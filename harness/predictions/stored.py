"""Which images a score was computed on, and the per-image predictions behind it.

Every fine-tune keeps its logits on validation and test as a compact artifact (role
``predictions``: an ``.npz`` of float16 logits, labels and image ids, read back with
``allow_pickle=False``), so later commands compare two models image by image
(:mod:`harness.evaluate.paired`) without running either again. A score names its image set with
an :class:`EvalSet`: the split, how many images of how many, and a hash of their ids; two numbers
for one model from different sets are then told apart instead of silently compared.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from registry import keys
from registry.files import atomic_writer

if TYPE_CHECKING:
    from registry.store import ModelVersion


@dataclass(frozen=True)
class EvalSet:
    """An image set: ``name`` (``val``, ``test``), the dataset and split its images come from, how many
    of how many, and ``digest``, a hash of their row numbers in that split (equal sets, equal digests)."""

    name: str
    dataset: str
    split: str
    n: int
    of: int
    digest: str

    def text(self) -> str:
        """``test: all 10,000 test images of fashion-mnist #3f2a9c01be47``."""
        part = f"all {self.n:,}" if self.n == self.of else f"{self.n:,} of {self.of:,}"
        return f"{self.name}: {part} {self.split} images of {self.dataset} #{self.digest}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalSet:
        return cls(**{k: data[k] for k in ("name", "dataset", "split", "n", "of", "digest")})


def eval_set(name: str, dataset: str, split: str, ids: Any, of: int) -> EvalSet:
    """The :class:`EvalSet` of the images with row numbers ``ids`` in ``dataset``'s ``split``."""
    rows = np.asarray(ids, dtype="<i8")
    digest = hashlib.sha256(f"{dataset}\0{split}\0".encode() + rows.tobytes()).hexdigest()[:12]
    return EvalSet(name, dataset, split, int(rows.shape[0]), int(of), digest)


def stored_sets(version: ModelVersion) -> dict[str, EvalSet]:
    """The image sets a version's scores were computed on (empty for versions made before they were recorded)."""
    return {name: EvalSet.from_dict(d) for name, d in version.metrics.get(keys.EVAL_SETS, {}).items()}


def differ_note(what: str, here: EvalSet, there: EvalSet | None) -> str | None:
    """A sentence when two scores of one model come from different image sets (None when the same)."""
    if there is None or there.digest == here.digest:
        return None
    return (f"{what} was computed on a different image set ({there.text()}) than this one ({here.text()}): "
            "the two numbers are not comparable image for image")


@dataclass(frozen=True)
class SplitPredictions:
    """One model's logits on one image set, with the labels (rows align with the set's ids)."""

    evalset: EvalSet
    logits: np.ndarray  # float32, (n, classes)
    labels: np.ndarray  # int64, (n,)


def save_predictions(path: Path, splits: dict[str, tuple[Any, Any, Any]]) -> Path:
    """Write ``{name: (logits, labels, ids)}`` as one compressed ``.npz`` (atomically)."""
    arrays: dict[str, np.ndarray] = {}
    for name, (logits, labels, ids) in splits.items():
        arrays[f"{name}_logits"] = np.asarray(logits, dtype=np.float16)
        arrays[f"{name}_labels"] = np.asarray(labels, dtype=np.int32)
        arrays[f"{name}_ids"] = np.asarray(ids, dtype=np.int64)
    with atomic_writer(path) as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
    return path


def load_predictions(version: ModelVersion) -> dict[str, SplitPredictions]:
    """``{"val": ..., "test": ...}`` for ``version``; empty when it has no predictions artifact, or the
    file is missing, damaged (its sha256 differs from the stored one: checked before it is read) or
    does not match its recorded image sets. Never unpickles (``allow_pickle=False``)."""
    from registry.files import sha256_file

    artifact = version.artifacts.get(keys.ROLE_PREDICTIONS)
    sets = stored_sets(version)
    if artifact is None or not sets:
        return {}
    path = Path(artifact.path)
    try:
        if sha256_file(path) != artifact.sha256:
            return {}
        with np.load(path, allow_pickle=False) as data:
            out = {}
            for name, evalset in sets.items():
                if f"{name}_logits" not in data:
                    continue
                ids, logits, labels = data[f"{name}_ids"], data[f"{name}_logits"], data[f"{name}_labels"]
                if (eval_set(name, evalset.dataset, evalset.split, ids, evalset.of).digest != evalset.digest
                        or logits.ndim != 2 or len(logits) != evalset.n or labels.shape != (evalset.n,)):
                    return {}
                out[name] = SplitPredictions(evalset, logits.astype(np.float32), labels.astype(np.int64))
            return out
    except Exception:  # any damage (truncated zip, bad CRC, empty file, wrong dtypes) reads as "no predictions"
        return {}
